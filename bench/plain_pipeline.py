"""The plain scikit-learn script: the platform's work without the platform.

Loads the window's landing files (one parquet per day, oldest first), splits them with the same
test_size / random_state / stratification, builds the same model (median imputation + scaling
for numbers, most-frequent imputation + one-hot encoding for the rest, a RandomForestClassifier),
fits it, scores it on the held-out rows, and writes the joblib artifact and its sha256 to a
folder. No ml_platform import: this is what a data scientist would run by hand.

Writes ``<out>/model.joblib`` and ``<out>/result.json`` (metrics, sha256, phase timings).
The steps are functions so that bench/prefect_pipeline.py runs literally the same work as tasks.
"""

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer, make_column_selector  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline as SklearnPipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--landing", required=True, help="folder of YYYY-MM-DD.parquet files")
    parser.add_argument("--days", required=True, help="comma-separated days of the window, oldest first")
    parser.add_argument("--out", required=True, help="folder for model.joblib and result.json")
    parser.add_argument("--target", default="target")
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=1)
    return parser.parse_args(argv)


def load_days(landing: str, days: list[str]) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(os.path.join(landing, f"{day}.parquet")) for day in days],
        ignore_index=True,
    )


def split(frame: pd.DataFrame, target: str, test_size: float, random_state: int):
    return train_test_split(frame, test_size=test_size, random_state=random_state, stratify=frame[target])


def fit(
    train: pd.DataFrame, target: str, n_estimators: int, max_depth: int, random_state: int, n_jobs: int
) -> SklearnPipeline:
    numeric = SklearnPipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = SklearnPipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    model = SklearnPipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", numeric, make_column_selector(dtype_include="number")),
                        ("categorical", categorical, make_column_selector(dtype_exclude="number")),
                    ]
                ),
            ),
            (
                "model",
                RandomForestClassifier(
                    n_estimators=n_estimators,
                    max_depth=max_depth,
                    random_state=random_state,
                    n_jobs=n_jobs,
                ),
            ),
        ]
    )
    model.fit(train.drop(columns=[target]), train[target])
    return model


def evaluate(model: SklearnPipeline, test: pd.DataFrame, target: str) -> dict:
    y_test = test[target]
    predicted = model.predict(test.drop(columns=[target]))
    labels = list(model.classes_)
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "precision": float(precision_score(y_test, predicted, average="weighted", zero_division=0)),
        "recall": float(recall_score(y_test, predicted, average="weighted", zero_division=0)),
        "f1": float(f1_score(y_test, predicted, average="weighted", zero_division=0)),
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=labels).tolist(),
        "report": classification_report(y_test, predicted, labels=labels, output_dict=True, zero_division=0),
        "test_rows": int(len(test)),
    }


def dump(model: SklearnPipeline, out: str) -> str:
    """Writes ``<out>/model.joblib``; returns its sha256."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    artifact = buffer.getvalue()
    sha256 = hashlib.sha256(artifact).hexdigest()
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.joblib"), "wb") as handle:
        handle.write(artifact)
    return sha256


def write_result(out: str, result: dict) -> None:
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    phases = {"imports": time.perf_counter() - _T0}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = now - since
        return now

    t = time.perf_counter()
    frame = load_days(args.landing, args.days.split(","))
    t = mark("load", t)
    train, test = split(frame, args.target, args.test_size, args.random_state)
    t = mark("split", t)
    model = fit(train, args.target, args.n_estimators, args.max_depth, args.random_state, args.n_jobs)
    t = mark("fit", t)
    metrics = evaluate(model, test, args.target)
    t = mark("evaluate", t)
    sha256 = dump(model, args.out)
    t = mark("dump", t)
    write_result(args.out, {"metrics": metrics, "sha256": sha256, "rows": len(frame), "phases": phases})


if __name__ == "__main__":
    main()
