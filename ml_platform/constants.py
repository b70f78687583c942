"""Names and defaults shared across the platform. The estimators' parameter defaults live with their
parameter models in ``ml_platform.estimators``, and each rule's own limits beside it (quality/,
drift.py, signature.py)."""

# Owners shown in the UI; a team, as Dagster's owner strings allow.
DATA_OWNER = "team:data-platform"
ML_OWNER = "team:ml-platform"

# Platform settings defaults (overridable by environment, see settings.py).
DEFAULT_LANDING_DIR = "data/landing"
DEFAULT_MODEL_STORE_DIR = "data/model_store"
DEFAULT_ASSET_STORAGE_DIR = "data/assets"
DEFAULT_MODEL_NAME = "demo_classifier"
DEFAULT_TARGET_COLUMN = "target"
DEFAULT_WINDOW_DAYS = 7
DEFAULT_PARTITIONS_START = "2025-01-01"
DEFAULT_TIMEZONE = "UTC"

# Data quality.
DEFAULT_MAX_NULL_RATIO = 0.1
# Rows without a label: their share of a day (quality.target_missing.max_ratio).
DEFAULT_MAX_TARGET_MISSING = 0.1
MIN_TARGET_CLASSES = 2
# A text column whose values are this share numbers is a numeric column with garbage in it.
NUMERIC_LIKE_SHARE = 0.9
PREVIEW_ROWS = 5

# Splitting and training.
DEFAULT_TEST_SIZE = 0.25
DEFAULT_RANDOM_STATE = 42
TOP_FEATURE_IMPORTANCES = 20
# Encoding categorical columns (features.encoding): one-hot columns per categorical column, and how
# few training rows make a value rare (grouped with the other rare ones). hist_gradient_boosting
# codes categories natively: at most its max_bins (255) per column, rare values one of them.
DEFAULT_ENCODING_MAX_CATEGORIES = 50
DEFAULT_ENCODING_MIN_FREQUENCY = 5
NATIVE_MAX_CATEGORIES = 255

# Deployment gate.
DEFAULT_MIN_ACCURACY = 0.8

# Landing-file formats, in the order they are looked for.
LANDING_EXTENSIONS = (".parquet", ".csv")

# Deploys that race re-decide against the pointer this many times before failing.
PROMOTE_ATTEMPTS = 5

# Model store layout.
MODEL_FILENAME = "model.joblib"
METADATA_FILENAME = "metadata.json"
PRODUCTION_POINTER = "production.json"
# The rollout's second pointer (shadow, canary): the version that must earn production on live traffic.
CANDIDATE_POINTER = "candidate.json"
# The two pointers of a model, by role: the pointer's file and the folder of its moves.
POINTER_FILES = {"production": PRODUCTION_POINTER, "candidate": CANDIDATE_POINTER}
POINTER_HISTORIES = {"production": "history", "candidate": "candidate_history"}
# Hashes of the rows a version was trained on: champion / challenger compares on rows it never saw.
TRAIN_ROWS_FILENAME = "train_rows.npy"
# The profile of the rows a version was trained on: what the drift checks compare new days with.
DRIFT_PROFILE_FILENAME = "drift_profile.json"
# A classifier's calibration on its test split (estimate.Calibration), for the label-free estimate.
CALIBRATION_FILENAME = "calibration.json"
MIN_FRESH_TEST_ROWS = 10

# `ml-platform serve`: its defaults, the same for the command line and the app.
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
SERVE_RELOAD_INTERVAL_S = 5.0  # between looks at the production pointers
SERVE_MAX_BODY_MB = 10.0
SERVE_MAX_BATCH_ROWS = 10_000  # most rows scored in one predict call when requests arrive together

# Automation.
DAILY_SCHEDULE_CRON = "0 2 * * *"  # 02:00 in ML_PLATFORM_TIMEZONE, for the day that just ended
LANDING_SENSOR_INTERVAL_S = 60
TRIGGER_TAG = "ml_platform/trigger"
FINGERPRINT_TAG = "ml_platform/fingerprint"
PIPELINE_TAG = "ml_platform/pipeline"
LANDING_INGEST_TRIGGER = "landing-ingest"
LANDING_RETRAIN_TRIGGER = "landing-retrain"

# Retries of steps that touch storage: 3 retries, 2 s then 4 s then 8 s (± jitter).
STORAGE_RETRIES = 3
STORAGE_RETRY_DELAY_S = 2.0
# Longest a run may take before run monitoring fails it (`dagster/max_runtime`).
DEFAULT_MAX_RUNTIME_S = 3600

# The model store's recipe index: <model>/recipes/<sha256 of a recipe identity>.json names the
# newest version of that recipe; INDEXED marks a store whose older versions were indexed too.
RECIPES_FOLDER = "recipes"
RECIPES_INDEXED = "INDEXED"

# The prediction log of `ml-platform serve`: <model>/prediction_log/<day>/<part>.parquet, with its
# own columns (a feature of one of these names is kept as "<name> (feature)"). ``role``: "production" or
# "candidate" (a rollout's); ``answered``: this model's prediction (or refusal) was the request's answer.
PREDICTION_LOG_FOLDER = "prediction_log"
PREDICTION_LOG_COLUMNS = (
    "request_id",
    "row",
    "logged_at",
    "model",
    "version",
    "role",
    "answered",
    "latency_ms",
    "prediction",
    "refused",
)
