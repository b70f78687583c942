"""The pipeline with hyperparameter variants of the variants tests."""

VARIANTS_YAML = """
    pipelines:
      - name: churn
        landing: churn
        model:
          estimator: random_forest
          params: {n_estimators: 30, max_depth: 8}
          variants: [{max_depth: 1, n_estimators: 1}, {max_depth: 8}]
        gate: {min_accuracy: 0.8, max_regression: 0.05}
        demo_data: breast_cancer
"""
WEAK, STRONG = "max_depth=1+n_estimators=1", "max_depth=8"
