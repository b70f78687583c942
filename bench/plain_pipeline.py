"""The plain scikit-learn script: the platform's work without the platform.

Loads the window's landing files (one parquet per day, oldest first), splits them with the same
test_size / random_state / stratification, builds the same model (median imputation + scaling
for numbers, most-frequent imputation + one-hot encoding for the rest, a RandomForestClassifier),
fits it, scores it on the held-out rows, and writes the joblib artifact and its sha256 to a
folder. No ml_platform import: this is what a data scientist would run by hand.

Writes ``<out>/model.joblib`` and ``<out>/result.json`` (metrics, sha256, phase timings).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, help="folder of YYYY-MM-DD.parquet files")
    parser.add_argument("--days", required=True, help="comma-separated days of the window, oldest first")
    parser.add_argument("--out", required=True, help="folder for model.joblib and result.json")
    parser.add_argument("--target", default="target")
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    phases = {"imports": time.perf_counter() - _T0}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = now - since
        return now

    t = time.perf_counter()
    days = args.days.split(",")
    frame = pd.concat(
        [pd.read_parquet(os.path.join(args.landing, f"{day}.parquet")) for day in days],
        ignore_index=True,
    )
    t = mark("load", t)

    train, test = train_test_split(
        frame, test_size=args.test_size, random_state=args.random_state, stratify=frame[args.target]
    )
    t = mark("split", t)

    numeric = SklearnPipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = SklearnPipeline(
        [("impute", SimpleImputer(strategy="most_frequent")),
         ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    model = SklearnPipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", numeric, make_column_selector(dtype_include="number")),
            ("categorical", categorical, make_column_selector(dtype_exclude="number")),
        ])),
        ("model", RandomForestClassifier(
            n_estimators=args.n_estimators, max_depth=args.max_depth,
            random_state=args.random_state, n_jobs=args.n_jobs,
        )),
    ])
    model.fit(train.drop(columns=[args.target]), train[args.target])
    t = mark("fit", t)

    y_test = test[args.target]
    predicted = model.predict(test.drop(columns=[args.target]))
    labels = list(model.classes_)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "precision": float(precision_score(y_test, predicted, average="weighted", zero_division=0)),
        "recall": float(recall_score(y_test, predicted, average="weighted", zero_division=0)),
        "f1": float(f1_score(y_test, predicted, average="weighted", zero_division=0)),
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=labels).tolist(),
        "report": classification_report(y_test, predicted, labels=labels, output_dict=True, zero_division=0),
        "test_rows": int(len(test)),
    }
    t = mark("evaluate", t)

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    artifact = buffer.getvalue()
    sha256 = hashlib.sha256(artifact).hexdigest()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "model.joblib"), "wb") as handle:
        handle.write(artifact)
    t = mark("dump", t)

    with open(os.path.join(args.out, "result.json"), "w") as handle:
        json.dump({"metrics": metrics, "sha256": sha256, "rows": len(frame), "phases": phases}, handle)


if __name__ == "__main__":
    main()
