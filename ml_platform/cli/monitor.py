"""`monitor`: a model's prediction log per day, with its live metrics."""

from __future__ import annotations

import argparse
import json

from ml_platform.cli.common import add_store_dir, from_instance, pipelines_if_readable, platform_settings, store_of
from ml_platform.errors import MlPlatformError


def cmd_monitor(args: argparse.Namespace) -> int:
    """The newest ``--days`` days of a model's prediction log, today's included, one line a day; with
    ``feedback``, each day's live gate metric and labelled share from live_metrics[day]."""
    from ml_platform import traffic

    if args.days < 1:
        raise MlPlatformError("--days must be >= 1")
    store, name = store_of(args)
    days = traffic.logged_days(store.list_children, name)[-args.days :]
    if not days:
        print(f"no prediction log of {name} in {store.uri(name)} (is `ml-platform serve` logging it?)")
        return 0
    specs = pipelines_if_readable(platform_settings(), "drift by PSI at 0.2, no live metrics")
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

    key = dg.AssetKey([spec.name, "live_metrics"])
    latest = from_instance(
        lambda instance: latest_materialization_per_partition(instance, key), "no live metrics", say_unset=False
    )
    if latest is None:
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


def add_commands(sub) -> None:
    mon = sub.add_parser(
        "monitor",
        help="a model's prediction log per day: requests, refused rows, latency, drift, versions",
        description="Read a model's prediction log (what `ml-platform serve` answered), today's included, and"
        " print one line a day: requests, rows, the share refused by the signature check, latency quantiles,"
        " the features that drift from the training data, and the versions that answered.",
    )
    mon.add_argument("--model", help="model name (default: ML_PLATFORM_MODEL_NAME)")
    mon.add_argument("--days", type=int, default=30, help="newest days of the log to read (default %(default)s)")
    add_store_dir(mon)
    mon.add_argument("--json", action="store_true", help="print JSON")
    mon.set_defaults(func=cmd_monitor)
