"""Asset checks: the data contract on raw data and the model-quality gate."""
