"""What a fresh process pays before any work: imports, one layer after the other; JSON on stdout.

1. what the plain script imports (pandas, pyarrow, joblib, the scikit-learn modules it uses);
2. then dagster;
3. then the rest of ml_platform.definitions (the code location: assets, checks, sensors, ...) in
   local mode;
4. then dagster_aws.s3 (boto3): what ML_PLATFORM_ENV=prod adds (local mode does not import it).

Each figure is the extra time of that layer on top of the ones before.
"""

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

layers = {}
t = time.perf_counter()
import joblib  # noqa: E402, F401
import pandas  # noqa: E402, F401
import pyarrow.parquet  # noqa: E402, F401
import sklearn.compose  # noqa: E402
import sklearn.ensemble  # noqa: E402
import sklearn.impute  # noqa: E402
import sklearn.metrics  # noqa: E402
import sklearn.model_selection  # noqa: E402
import sklearn.pipeline  # noqa: E402
import sklearn.preprocessing  # noqa: E402, F401

layers["pandas_pyarrow_sklearn"] = time.perf_counter() - t
t = time.perf_counter()
import dagster  # noqa: E402, F401

layers["dagster"] = time.perf_counter() - t
t = time.perf_counter()
import ml_platform.definitions  # noqa: E402, F401

layers["ml_platform_definitions_rest"] = time.perf_counter() - t
layers["local_mode_imports_boto3"] = "boto3" in sys.modules
t = time.perf_counter()
import dagster_aws.s3  # noqa: E402, F401

layers["dagster_aws_s3"] = time.perf_counter() - t
layers["total_in_process"] = time.perf_counter() - _T0
json.dump(layers, sys.stdout)
