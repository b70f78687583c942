"""Fixed values of the test suite: days inside the partitions, names, paths."""

import sys
from pathlib import Path

from ml_platform.demo import demo_days

ROOT = Path(__file__).resolve().parents[2]  # the repository
BIN = Path(sys.executable).parent  # the venv's console scripts: dagster, ml-platform
# The pipelines the tests build, the test suite's own (not the repository's pipelines.yaml, so that
# editing the demo's gate there breaks no unrelated test).
TEST_PIPELINES_FILE = Path(__file__).resolve().parent / "pipelines.yaml"

# Fixed days inside the partitions definition, so results do not depend on today's date.
END_DAY = "2026-01-07"
WINDOW = 7
DAYS = demo_days(END_DAY, WINDOW)
MODEL_NAME = "demo_classifier"
TARGET = "target"
PREFIX = "demo"  # the demo pipeline's name: its asset keys start with it
CHAIN = "key:demo/training_data+"
