"""`ml-platform`: what the `dagster` CLI does not cover (demo data, the model store, serving)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ml_platform import constants
from ml_platform.errors import MlPlatformError


def _settings():
    from ml_platform.settings import load_settings

    return load_settings()


def _last_day() -> str:
    from ml_platform.partitions import daily_partitions

    return daily_partitions.get_last_partition_key()


def _pipelines(settings):
    from ml_platform.loading import load_pipelines

    return load_pipelines(settings)


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Demo data for each pipeline that declares ``demo_data`` (or the one --pipeline names)."""
    from ml_platform.demo import seed_landing

    settings = _settings()
    if args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    if args.synthetic_rows is not None and args.synthetic_rows < 10:
        raise MlPlatformError("--synthetic-rows must be >= 10")
    specs = _pipelines(settings)
    if args.pipeline:
        specs = [s for s in specs if s.name == args.pipeline]
        if not specs:
            raise MlPlatformError(f"--pipeline {args.pipeline!r} is not in the pipelines file")
    else:
        specs = [s for s in specs if s.demo_data]
    end_day = args.end_day or _last_day()
    for spec in specs:
        if args.landing_dir:
            folder = args.landing_dir
        elif spec.landing.startswith("s3://"):
            raise MlPlatformError(f"pipeline {spec.name!r} lands on S3: seed-demo writes local folders")
        else:
            folder = os.path.join(settings.landing_dir, spec.landing)
        paths = seed_landing(
            folder,
            end_day=end_day,
            days=args.days,
            target=spec.target,
            synthetic_rows=args.synthetic_rows if spec.task == "classification" else None,
            seed=args.seed,
            dataset=spec.demo_data or ("breast_cancer" if spec.task == "classification" else "diabetes"),
        )
        for path in paths:
            print(path)
        if args.landing_dir:
            break
    return 0


def cmd_demo_range(args: argparse.Namespace) -> int:
    from ml_platform.demo import demo_days

    days = demo_days(args.end_day or _last_day(), args.days)
    if args.list:
        print("\n".join(days))
    else:
        print(days[-1] if args.last else f"{days[0]}...{days[-1]}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Write docs/pipelines.md from the schema's field descriptions (or --check that it is current)."""
    from ml_platform.reference import PAGE, pipelines_reference, undocumented

    missing = undocumented()
    if missing:
        raise MlPlatformError(f"fields of the pipelines file without a description: {', '.join(missing)}")
    text = pipelines_reference()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            raise MlPlatformError(f"{PAGE} is not what the schema says: run `ml-platform docs`")
        print(f"{PAGE} is current")
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


def _store(args: argparse.Namespace):
    from ml_platform.backends.environment import model_store_of

    settings = _settings()
    store = model_store_of(settings, args.store_dir)
    return store, args.model or settings.model_name


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
    store, _ = _store(args)
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
    print("(* = production" + (", best first by the gate's metric)" if args.compare else ")"))
    return 0


def _model_listing(store, name: str, versions: list, compare: bool) -> tuple[str, str, list[str], list[dict]]:
    """(name, task, the task's metrics, one row per version): with ``compare``, the experiment
    history, best first by the gate's metric (errors such as RMSE: lowest first)."""
    from ml_platform.metrics import GATE_METRICS

    pointer = store.pointer(name)
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
            "created_at": v.record.created_at,
        }
        for v in versions
    ]
    return name, task, metrics, rows


def _print_model(name: str, task: str, metrics: list[str], rows: list[dict], compare: bool) -> None:
    from ml_platform.metrics import METRIC_LABELS

    print(f"{name} ({task})")
    header = f"{'':2}{'version':<36}" + "".join(f" {METRIC_LABELS[m]:>8}" for m in metrics)
    gate = rows[0]["gate_metric"] if rows else metrics[0]
    header += f"  {METRIC_LABELS[gate] + ' 95 %':<18} {'as of':>10}  {'signature':<22}"
    if compare:
        header += f" {'rows':>7}  {'data':<14}  params"
    print(header.rstrip())
    for row in rows:
        line = f"{'* ' if row['production'] else '  '}{row['version']:<36}"
        line += "".join(f" {_num(row[m]):>8}" for m in metrics)
        interval = row["gate_interval"]
        shown = f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-"
        line += f"  {shown:<18} {row['data_as_of'] or '-':>10}  {row['signature']:<22}"
        if compare:
            fingerprint = (row["data_fingerprint"] or "-").removeprefix("sha256:")[:12]
            line += f" {row['training_rows'] or '-':>7}  {fingerprint:<14}  {_param_text(row['params'])}"
        print(line.rstrip())


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

    store, name = _store(args)
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

    store, name = _store(args)
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
    store, name = _store(args)
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


def cmd_contract(args: argparse.Namespace) -> int:
    """Print a ``quality:`` block for pipelines.yaml that a pipeline's ingested days meet: every
    stored raw_data day, or the newest ``--days``."""
    import dagster as dg

    from ml_platform.backends.environment import backends_for
    from ml_platform.quality.suggestion import contract_yaml

    if args.days is not None and args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    settings = _settings()
    specs = _pipelines(settings)
    spec = next((s for s in specs if args.model in (s.name, s.model_name)), None)
    if spec is None:
        names = ", ".join(f"{s.name} (model {s.model_name})" for s in specs)
        raise MlPlatformError(
            f"--model {args.model!r} is neither a pipeline nor a model of the pipelines file ({names})"
        )
    io_manager = backends_for(settings).io_manager
    key = dg.AssetKey([spec.name, "raw_data"])
    stored = io_manager.stored_partitions(key)
    days = stored if args.days is None else stored[-args.days :]
    if not days:
        raise MlPlatformError(
            f"no ingested days of {spec.name}: materialize {spec.name}/raw_data first"
            " (`dagster asset materialize --select 'key:" + spec.name + "/raw_data' ...`)"
        )
    frames = {day: io_manager.stored_value(key, day) for day in days}
    kinds = {f.name: f.kind for f in spec.features.columns or [] if f.kind}
    print(
        contract_yaml(
            frames, spec.target, spec.task, kinds, pipeline=spec.name, ingested=len(stored), indent=args.indent
        )
    )
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """The newest ``--days`` days of a model's prediction log, today's included, one line a day; with
    ``feedback``, each day's live gate metric and labelled share from live_metrics[day]."""
    from ml_platform import traffic

    if args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    store, name = _store(args)
    days = traffic.logged_days(store.list_children, name)[-args.days :]
    if not days:
        print(f"no prediction log of {name} in {store.uri(name)} (is `ml-platform serve` logging it?)")
        return 0
    specs = _pipelines_if_readable(_settings(), "drift by PSI at 0.2, no live metrics")
    spec = next((s for s in specs if s.model_name == name), None)
    live = _live_metrics(spec) if spec is not None and spec.feedback is not None else {}
    lines = [{**_monitor_day(store, name, day, spec.drift if spec else None), **live.get(day, {})} for day in days]
    if args.json:
        print(json.dumps(lines, indent=2))
        return 0
    metric = f"live {spec.gate_metric}" if live else None
    print(f"{name}: the prediction log, {len(days)} day(s) (drift: features over their threshold vs the")
    print("training data of the version that answered most rows)")
    header = f"{'day':<10}  {'requests':>8}  {'rows':>8}  {'refused':>7}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}"
    header += f"  {'drifted':>7}" + (f"  {metric:>14}  {'labelled':>8}" if metric else "") + "  versions"
    print(header)
    for line in lines:
        latency = line["latency_ms"]
        text = f"{line['day']:<10}  {line['requests']:>8}  {line['rows']:>8}  {1 - line['signature_share']:>7.1%}"
        text += "".join(f"  {latency.get(q, float('nan')):>7.1f}" for q in ("p50", "p95", "p99"))
        text += f"  {'-' if line['drifted'] is None else len(line['drifted']):>7}"
        if metric:
            value, share = line.get("live_metric"), line.get("labelled_share")
            text += f"  {'-' if value is None else f'{value:.4f}':>14}  {'-' if share is None else f'{share:.1%}':>8}"
        print(text + f"  {', '.join(line['version_names'])}")
    return 0


def _live_metrics(spec) -> dict[str, dict]:
    """{day: its live gate metric and labelled share} from the newest live_metrics materialization of
    each day in the Dagster instance of DAGSTER_HOME (none without DAGSTER_HOME)."""
    import dagster as dg

    from ml_platform.asset_records import LiveMetricsRecord
    from ml_platform.instance_queries import latest_materialization_per_partition

    if not os.environ.get("DAGSTER_HOME"):
        return {}
    try:
        with dg.DagsterInstance.get() as instance:
            latest = latest_materialization_per_partition(instance, dg.AssetKey([spec.name, "live_metrics"]))
    except Exception as exc:  # noqa: BLE001 - the traffic is shown without them, and the note says why
        # One line: Dagster's config and YAML errors run over many lines (the config's whole schema).
        said = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"note: no live metrics: the instance of DAGSTER_HOME cannot be read ({type(exc).__name__}: {said})",
            file=sys.stderr,
        )
        return {}
    live = {}
    for day, record in latest.items():
        recorded = LiveMetricsRecord.from_metadata(record.asset_materialization.metadata)
        live[day] = {
            "live_metric_name": spec.gate_metric,
            "live_metric": recorded.score(spec.gate_metric),
            "labelled_share": recorded.labelled_share,
        }
    return live


def _monitor_day(store, name: str, day: str, drift_spec) -> dict:
    """A day of the log in numbers, with the features that drift from the training data of the
    version that answered most of its rows (None when there is nothing to compare with), as
    served[day]'s check finds them."""
    from ml_platform import drift, traffic
    from ml_platform.assets.monitoring import served_skew

    frame = traffic.read_day(store.read_bytes, store.list_children, name, day)
    summary = traffic.summarize(frame)
    method = drift_spec.method if drift_spec else "psi"
    limit = drift_spec.limit if drift_spec else drift.DEFAULT_THRESHOLDS[method]
    try:
        found = served_skew(store, name, frame, method, limit)
    except MlPlatformError:
        found = None
    return {
        "day": day,
        **summary.to_dict(),
        "version_names": [v["Version"] for v in summary.versions],
        "drifted": None if found is None else [r["Feature"] for r in found[0] if r["Drifted"]],
    }


def _pipelines_if_readable(settings, without: str) -> list:
    """The pipelines (for their serving or drift settings), or none when the file cannot be read,
    saying what that means (``without``): a command on named models (``--model``) needs only the
    store."""
    try:
        return _pipelines(settings)
    except MlPlatformError as exc:
        print(f"note: the pipelines file was not read ({exc}): {without}", file=sys.stderr, flush=True)
        return []


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the production models over HTTP until stopped (SIGINT/SIGTERM)."""
    from ml_platform.resources.model_store import check_segment
    from ml_platform.serving.app import ServeConfig
    from ml_platform.serving.server import serve

    settings = _settings()
    specs = (
        _pipelines(settings)
        if not args.model
        else _pipelines_if_readable(settings, "every served model's requests are logged whole, days in UTC")
    )
    models = args.model or [spec.model_name for spec in specs]
    for name in models:
        check_segment(name, "model name")
    if args.workers < 1:
        raise MlPlatformError("--workers must be >= 1")
    if args.reload_interval <= 0:
        raise MlPlatformError("--reload-interval must be > 0 seconds")
    if args.max_body_mb <= 0:
        raise MlPlatformError("--max-body-mb must be > 0")
    if args.log_flush_s <= 0:
        raise MlPlatformError("--log-flush-s must be > 0 seconds")
    if not 0 < args.port < 65536:
        raise MlPlatformError(f"--port {args.port} is not a TCP port")
    config = ServeConfig(
        models=list(dict.fromkeys(models)),
        store_dir=args.store_dir,
        reload_interval_s=args.reload_interval,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_batch_rows=args.max_batch_rows,
        # Each model's serving.log of pipelines.yaml; --no-log turns every one off.
        log={name: {"enabled": False} for name in models}
        if args.no_log
        else {spec.model_name: {**spec.serving.log.model_dump(), "timezone": spec.schedule.timezone} for spec in specs},
        log_flush_s=args.log_flush_s,
    )
    print(
        f"serving {', '.join(config.models)} on http://{args.host}:{args.port}"
        f" ({args.workers} worker{'s' if args.workers > 1 else ''}; pointers followed every"
        f" {args.reload_interval:g} s and on SIGHUP)",
        flush=True,
    )
    serve(config, args.host, args.port, args.workers, log_level=args.log_level, access_log=args.access_log)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo_commands(sub)
    _add_contract_command(sub)
    _add_serve_command(sub)
    _add_monitor_command(sub)
    _add_store_commands(sub)
    return parser


def _add_demo_commands(sub) -> None:
    """seed-demo, demo-range and docs."""
    seed = sub.add_parser("seed-demo", help="write demo landing files, one parquet per day")
    seed.add_argument(
        "--days", type=int, default=constants.DEFAULT_WINDOW_DAYS, help="number of days (default %(default)s)"
    )
    seed.add_argument("--end-day", help="last day, YYYY-MM-DD (default: the newest partition, yesterday)")
    seed.add_argument(
        "--synthetic-rows", type=int, help="rows per day of synthetic data instead of the breast cancer set"
    )
    seed.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    seed.add_argument("--pipeline", help="only this pipeline (default: every pipeline with demo_data)")
    seed.add_argument("--landing-dir", help="folder to write to (default: each pipeline's landing)")
    seed.set_defaults(func=cmd_seed_demo)

    rng = sub.add_parser("demo-range", help="print the demo's partition range FIRST...LAST")
    rng.add_argument("--days", type=int, default=constants.DEFAULT_WINDOW_DAYS)
    rng.add_argument("--end-day")
    rng.add_argument("--last", action="store_true", help="print only the last day")
    rng.add_argument("--list", action="store_true", help="print every day, one a line")
    rng.set_defaults(func=cmd_demo_range)

    docs = sub.add_parser("docs", help="write docs/pipelines.md from the schema's field descriptions")
    docs.add_argument("--check", action="store_true", help="only check that the page is current (exit 2 if not)")
    docs.set_defaults(func=cmd_docs)


def _add_contract_command(sub) -> None:
    con = sub.add_parser(
        "contract",
        help="print a quality: block for pipelines.yaml from the ingested days",
        description="Read a pipeline's ingested raw_data days (all of them, or the newest --days) and print a"
        " `quality:` block (null shares, ranges, categories, ids, rows, labels) that they meet, to paste"
        " into its entry of pipelines.yaml. What the days show of the values (ranges, categories, rows a"
        " day) blocks only when they span a year; from fewer days it is suggested with severity: warn.",
    )
    con.add_argument("--model", required=True, help="the pipeline (its name, or its model's name)")
    con.add_argument(
        "--days", type=int, help="read only the newest N ingested days (default: every ingested day)", metavar="N"
    )
    con.add_argument(
        "--indent",
        type=int,
        default=4,
        choices=range(0, 13),
        metavar="N",
        help="spaces before `quality:`, as the entry's keys are indented (default %(default)s)",
    )
    con.set_defaults(func=cmd_contract)


def _add_store_dir(parser) -> None:
    parser.add_argument(
        "--store-dir",
        help="a local model store folder (default: the store of ML_PLATFORM_ENV: "
        "ML_PLATFORM_MODEL_STORE_DIR, or the S3 bucket in prod)",
    )


def _add_monitor_command(sub) -> None:
    mon = sub.add_parser(
        "monitor",
        help="a model's prediction log per day: requests, refused rows, latency, drift, versions",
        description="Read a model's prediction log (what `ml-platform serve` answered), today's included, and"
        " print one line a day: requests, rows, the share refused by the signature check, latency quantiles,"
        " the features that drift from the training data, and the versions that answered.",
    )
    mon.add_argument("--model", help="model name (default: ML_PLATFORM_MODEL_NAME)")
    mon.add_argument("--days", type=int, default=30, help="newest days of the log to read (default %(default)s)")
    _add_store_dir(mon)
    mon.add_argument("--json", action="store_true", help="print JSON")
    mon.set_defaults(func=cmd_monitor)


def _add_serve_command(sub) -> None:
    srv = sub.add_parser(
        "serve",
        help="serve the production models over HTTP (hot reload, metrics)",
        description="Serve every model of the pipelines file (or the --model ones) over HTTP:"
        " POST /v1/models/NAME/predict, GET /v1/models, /livez, /readyz, /metrics."
        " ML_PLATFORM_SERVE_TOKEN, when set, is the bearer token every route but the probes needs.",
    )
    srv.add_argument("--model", action="append", help="a model to serve (repeat; default: every pipeline's)")
    srv.add_argument("--host", default=constants.SERVE_HOST, help="address to bind (default %(default)s)")
    srv.add_argument("--port", type=int, default=constants.SERVE_PORT, help="port (default %(default)s)")
    srv.add_argument("--workers", type=int, default=1, help="worker processes on the port (default %(default)s)")
    srv.add_argument(
        "--reload-interval",
        type=float,
        default=constants.SERVE_RELOAD_INTERVAL_S,
        help="seconds between looks at the production pointers (default %(default)s)",
    )
    srv.add_argument(
        "--max-body-mb",
        type=float,
        default=constants.SERVE_MAX_BODY_MB,
        help="largest request body, in MiB; larger ones get 413 (default %(default)s)",
    )
    srv.add_argument(
        "--max-batch-rows",
        type=int,
        default=constants.SERVE_MAX_BATCH_ROWS,
        help="most rows scored in one predict call when requests arrive together (default %(default)s)",
    )
    srv.add_argument("--store-dir", help="a local model store folder (default: the store of ML_PLATFORM_ENV)")
    srv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    srv.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    srv.add_argument(
        "--no-log", action="store_true", help="keep no prediction log (default: each pipeline's serving.log)"
    )
    srv.add_argument(
        "--log-flush-s",
        type=float,
        default=1.0,
        help="how often the prediction log is written, in seconds (default %(default)s)",
    )
    srv.set_defaults(func=cmd_serve)


def _add_store_commands(sub) -> None:
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
        _add_store_dir(p)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (MlPlatformError, ValueError, OSError) as exc:
        print(f"ml-platform: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
