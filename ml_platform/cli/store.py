"""`models`, `production`, `predict` and `rollback`: the model store's commands."""

from __future__ import annotations

import argparse
import json
import os

from ml_platform.cli.common import add_store_dir, store_of
from ml_platform.errors import MlPlatformError


def _param_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _metric_names(task: str) -> list[str]:
    from ml_platform.metrics import HEADLINE_METRICS

    return [m for m in HEADLINE_METRICS.get(task, HEADLINE_METRICS["classification"]) if m != "test_rows"]


def _signature_text(signature) -> str:
    if signature is None:
        return "-"
    if not signature.kinds:
        return f"({len(signature.features)} columns, kinds not recorded)"
    return f"{signature.digest} ({len(signature.features)} columns)"


def cmd_models(args: argparse.Namespace) -> int:
    """Every model of the store (or --model's): its versions with its task's own metrics."""
    store, _ = store_of(args)
    names = [args.model] if args.model else store.list_models()
    if not names:
        print(f"no models in {store.uri('')}")
        return 0
    listing = []
    for name in names:
        versions = store.list_versions(name)
        if not versions and args.model:
            print(f"no versions of {name} in {store.uri(name)}")
            return 0
        listing.append(_model_listing(store, name, versions, args.compare))
    if args.json:
        print(json.dumps([row for *_, rows in listing for row in rows], indent=2))
        return 0
    for index, (name, task, metrics, rows) in enumerate(listing):
        if index:
            print()
        _print_model(name, task, metrics, rows, args.compare)
    order = ", best first by the gate's metric" if args.compare else ""
    print(f"(* = production, c = the rollout's candidate{order})")
    return 0


def _model_listing(store, name: str, versions: list, compare: bool) -> tuple[str, str, list[str], list[dict]]:
    """(name, task, the task's metrics, one row per version): with ``compare``, the experiment
    history, best first by the gate's metric (errors such as RMSE: lowest first)."""
    from ml_platform.metrics import GATE_METRICS

    pointer, candidate = store.pointer(name), store.candidate(name)
    current = pointer.version if pointer else None
    task = (versions[-1].record.recipe.task if versions else None) or "classification"
    metrics = _metric_names(task)
    gate = (versions[-1].record.gate_metric if versions else None) or metrics[0]
    if gate not in metrics:
        metrics.append(gate)  # a gate on another metric (roc_auc, mape ...): shown too
    if compare:
        higher = GATE_METRICS.get(task, {}).get(gate, True)
        worst = float("-inf") if higher else float("inf")
        versions = sorted(versions, key=lambda v: v.record.metrics.get(gate, worst), reverse=higher)
    rows = [
        {
            "model": name,
            "task": v.record.recipe.task or task,
            "production": v.version == current,
            "candidate": candidate is not None and v.version == candidate.version,
            "version": v.version,
            **{m: v.record.metrics.get(m) for m in metrics},
            # The gate metric's bootstrap 95 % interval (versions stored before intervals: none).
            "gate_metric": gate,
            "gate_interval": (v.record.metric_intervals or {}).get(gate),
            "decision_threshold": (v.record.decision_threshold or {}).get("threshold"),
            "data_as_of": v.record.fit.data_as_of,
            "training_rows": v.record.fit.training_rows,
            "params": v.record.recipe.params,
            "data_fingerprint": v.record.recipe.data_fingerprint,
            "signature": _signature_text(v.record.fit.signature),
            # How ml-platform serve answers with it: its compiled form, or scikit-learn (and why).
            "serving": _serving(v.record),
            "created_at": v.record.created_at,
        }
        for v in versions
    ]
    return name, task, metrics, rows


def _print_model(name: str, task: str, metrics: list[str], rows: list[dict], compare: bool) -> None:
    from ml_platform.metrics import METRIC_LABELS

    print(f"{name} ({task})")
    # Each metric's column as wide as its label (Precision has 9 letters): the rows stay under the header.
    widths = {m: max(8, len(METRIC_LABELS[m])) for m in metrics}
    header = f"{'':2}{'version':<36}" + "".join(f" {METRIC_LABELS[m]:>{widths[m]}}" for m in metrics)
    gate = rows[0]["gate_metric"] if rows else metrics[0]
    header += f"  {METRIC_LABELS[gate] + ' 95 %':<18} {'as of':>10}  {'signature':<22} {'served by':<12}"
    if compare:
        header += f" {'rows':>7}  {'data':<14}  params"
    print(header.rstrip())
    for row in rows:
        line = f"{'* ' if row['production'] else 'c ' if row['candidate'] else '  '}{row['version']:<36}"
        line += "".join(f" {_num(row[m]):>{widths[m]}}" for m in metrics)
        interval = row["gate_interval"]
        shown = f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-"
        line += f"  {shown:<18} {row['data_as_of'] or '-':>10}  {row['signature']:<22} {row['serving']['path']:<12}"
        if compare:
            fingerprint = (row["data_fingerprint"] or "-").removeprefix("sha256:")[:12]
            line += f" {row['training_rows'] or '-':>7}  {fingerprint:<14}  {_param_text(row['params'])}"
        print(line.rstrip())
    for row in rows:
        if row["serving"]["path"] != "compiled":
            print(f"  {row['version']} is served by scikit-learn: {row['serving']['reason']}")


def _serving(record) -> dict:
    """How the server answers with a version (``compiled.Parity``): path, form, rows compared, reason."""
    from ml_platform.compiled import NO_PARITY, Parity

    parity = Parity.from_dict(record.parity)
    if parity is None:
        return {"path": "scikit-learn", "reason": NO_PARITY}
    untrusted = parity.trusted_here()
    if parity.path == "compiled" and untrusted is not None:
        # As the server decides (compiled.compiled_or_reason): a parity checked by another compiled format or
        # another scikit-learn is not trusted here, and scikit-learn serves the version.
        said = f"scikit-learn: {untrusted}"
        return {**parity.to_dict(), "path": "scikit-learn", "reason": untrusted, "described": said}
    return {**parity.to_dict(), "described": parity.describe()}


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def _read_rows(source: str, signature):
    """The rows of a .csv, .parquet or .json file (records, or {"columns": [...], "data": [...]});
    a CSV's categorical columns are read as text, as they were in training."""
    import pandas as pd

    from ml_platform.signature import as_frame

    if not os.path.isfile(source):
        raise MlPlatformError(f"--input {source}: no such file")
    if os.path.getsize(source) == 0:
        raise MlPlatformError(f"--input {source} is empty (0 bytes)")
    extension = os.path.splitext(source)[1].lower()
    if extension not in (".csv", ".parquet", ".json"):
        raise MlPlatformError(f"--input {source}: expected a .csv, .parquet or .json file")
    try:
        if extension == ".parquet":
            return pd.read_parquet(source)
        if extension == ".json":
            with open(source) as handle:
                return as_frame(json.load(handle))
        return pd.read_csv(source, dtype=signature.csv_dtypes())
    except MlPlatformError:
        raise
    except Exception as exc:  # any parse failure is reported in one line
        raise MlPlatformError(f"--input {source} cannot be read: {str(exc).strip().splitlines()[0]}") from exc


def cmd_predict(args: argparse.Namespace) -> int:
    from ml_platform.serving import CheckedModel

    store, name = store_of(args)
    sklearn_model, version = store.load(name, version=args.version)  # verifies the sha256
    model = CheckedModel(sklearn_model, version)
    source = args.input
    output = args.output or os.path.splitext(source)[0] + ".predictions.csv"
    if os.path.splitext(output)[1].lower() not in (".csv", ".parquet"):
        raise MlPlatformError(f"--output {output}: expected a .csv or .parquet file")
    frame = _read_rows(source, model.signature)
    try:
        result = model.predict_with_report(frame, proba=args.proba)
    except MlPlatformError as exc:
        raise MlPlatformError(f"--input {source}: {exc}") from exc
    out = frame.copy()
    out["prediction"] = result.predictions
    if result.probabilities is not None:
        for label in result.probabilities.columns:
            out[f"proba_{label}"] = result.probabilities[label].to_numpy()
    from ml_platform.storage import atomic_write

    if output.lower().endswith(".parquet"):
        atomic_write(output, lambda handle: out.to_parquet(handle, index=False))
    else:
        atomic_write(output, lambda handle: handle.write(out.to_csv(index=False).encode()))
    print(f"{len(out)} predictions by {name} {version.version} written to {output}")
    for line in result.report.lines():
        print(line)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    store, name = store_of(args)
    pointer = store.pointer(name)
    if pointer is None:
        raise MlPlatformError(f"model {name!r} has no production version to roll back")
    target = args.to or pointer.previous
    if not target:
        raise MlPlatformError(f"{pointer.version} has no previous version: use --to VERSION")
    if target == pointer.version:
        raise MlPlatformError(f"{target} is already in production")
    _, target_version = store.load(name, version=target)  # refuse a missing, incomplete or altered version
    try:
        actor = getpass.getuser()
    except (KeyError, OSError):
        actor = "unknown"
    record = store.promote(name, target, reason=args.reason or "rollback", actor=f"ml-platform rollback ({actor})")
    print(
        f"production {name}: {pointer.version} -> {record.version}"
        f" (by {record.actor} at {record.promoted_at}: {record.reason})"
    )
    note = _signature_note(store.get_version(name, pointer.version), target_version)
    if note:
        print(note)
    return 0


def _signature_note(old, new) -> str | None:
    """What a caller must know when production moves from ``old`` to ``new``: a signature change."""
    from ml_platform.signature import compare

    before, after = old.record.fit.signature, new.record.fit.signature
    if before is None or after is None:
        return None
    change = compare(before, after)
    if not change.breaking:
        return None
    return (
        f"note: {new.version} takes other columns than {old.version} did ({change.describe()}):"
        " callers must send its columns"
    )


def cmd_production(args: argparse.Namespace) -> int:
    store, name = store_of(args)
    _, version = store.load(name)  # verifies the sha256
    record = version.record
    pointer = store.pointer(name)
    info = {
        "model": name,
        "version": version.version,
        "location": version.location,
        "sha256": version.sha256,
        "sha256_verified": True,
        "promoted_at": pointer.promoted_at if pointer else None,
        "data_as_of": record.fit.data_as_of,
        "metrics": record.metrics or None,
        "metric_intervals": record.metric_intervals or None,
        "gate_metric": record.gate_metric,
        # A binary classifier's threshold on the positive class (none: it predicts at 0.5).
        "decision_threshold": record.decision_threshold,
        "estimator": record.recipe.estimator,
        "params": record.recipe.params or None,
        "variant": record.fit.variant,
        "feature_transform": record.recipe.feature_transform,
        "pipeline_version": record.recipe.pipeline_version,
        "requirements": record.recipe.requirements,
        # As recorded: a version stored before signatures has none (its column names only).
        "signature": record.fit.signature.to_dict() if record.fit.signature and record.fit.signature.kinds else None,
        "serving": _serving(record),
    }
    print(json.dumps(info, indent=2) if args.json else _human(info, record.fit.signature))
    return 0


def _human(info: dict, signature) -> str:
    metrics = info["metrics"] or {}
    lines = [
        f"Production model : {info['model']} {info['version']}",
        f"Location         : {info['location']}",
        f"sha256 (verified): {info['sha256']}",
        f"Promoted at      : {info['promoted_at']}",
        f"Data as of       : {info['data_as_of']}",
        f"Gate metric      : {info['gate_metric'] or '-'}",
        f"Estimator        : {info['estimator']}" + (f" (variant {info['variant']})" if info.get("variant") else ""),
    ]
    if info.get("decision_threshold"):
        from ml_platform.decision import describe

        lines.append(f"Decision         : {describe(info['decision_threshold'])}")
    serving = info["serving"]
    lines.append(f"Served by        : {serving.get('described') or 'scikit-learn: ' + serving['reason']}")
    if info.get("feature_transform"):
        lines.append(f"Feature transform: {info['feature_transform']}")
    if info.get("pipeline_version"):
        lines.append(f"Pipeline version : {info['pipeline_version']}")
    for entry in info.get("requirements") or []:
        pinned = (
            f"{entry['distribution']}=={entry['version']}"
            if "distribution" in entry
            else f"{entry.get('file', '?')} {entry.get('sha256', '')[:19]}"
        )
        lines.append(f"Needs            : module {entry['module']} ({pinned})")
    from ml_platform.metrics import METRIC_LABELS

    shown = info.get("metric_intervals") or {}
    lines += [
        f"{METRIC_LABELS.get(k, k.capitalize()):<17}: {v:.4f}"
        + (f" [{shown[k][0]:.4f}, {shown[k][1]:.4f}]" if k in shown else "")
        for k, v in metrics.items()
        if isinstance(v, float)
    ]
    lines += _signature_lines(signature)
    return "\n".join(lines)


def _signature_lines(signature) -> list[str]:
    if signature is None:
        return ["Signature        : not recorded"]
    lines = [f"Signature        : {signature.digest}: {signature.describe()}"]
    for row in signature.rows():
        if row["Min"] is not None:
            seen = f"{row['Min']:g} .. {row['Max']:g}"
        else:
            seen = row["Categories"]
        nulls = ", nulls seen" if row["Nulls seen"] else ""
        lines.append(f"  {row['Column']:<28} {row['Kind']:<12} {row['Dtype']:<8} {seen}{nulls}")
    return lines


def add_commands(sub) -> None:
    """models, production, predict and rollback: the model store's commands, each with --model and
    --store-dir."""
    for name, func, text in (
        ("models", cmd_models, "list every model's versions (or --model's) with its metrics; * marks production"),
        ("production", cmd_production, "show the production model (sha256 verified) and its metrics"),
        ("predict", cmd_predict, "predict with the production model (or --version) on a CSV/parquet file"),
        ("rollback", cmd_rollback, "move the production pointer back (atomically), recording who/when/why"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--model", help="model name (default: ML_PLATFORM_MODEL_NAME; models: every model)")
        add_store_dir(p)
        if name in ("production", "models"):
            p.add_argument("--json", action="store_true", help="print JSON")
        if name == "models":
            p.add_argument(
                "--compare",
                action="store_true",
                help="experiment history: params, data and scores of every version, best first by the gate's metric",
            )
        if name == "predict":
            p.add_argument("--input", required=True, help="rows to predict: .csv, .parquet or .json (records)")
            p.add_argument("--output", help="where to write, .csv or .parquet (default: INPUT.predictions.csv)")
            p.add_argument("--version", help="a stored version instead of production")
            p.add_argument(
                "--proba", action="store_true", help="also write each class's probability (proba_<class>; classifiers)"
            )
        if name == "rollback":
            p.add_argument("--to", help="version to put in production (default: the previous one)")
            p.add_argument("--reason", help="why, recorded in the store's history")
        p.set_defaults(func=func)
