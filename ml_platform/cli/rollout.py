"""`rollout`: where a model's rollout stands (its candidate, the evidence so far with intervals, what
the rules would decide today), and `rollout promote|abort` to decide by hand, recorded like the
rollout sensor's decisions (the pointers' histories, the notifications)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from ml_platform.cli.common import add_store_dir, from_instance, platform_pipelines, platform_settings, store_of
from ml_platform.errors import MlPlatformError


def cmd_rollout(args: argparse.Namespace) -> int:
    from ml_platform import clock
    from ml_platform.runtime import PipelineRuntime
    from ml_platform.sensors.rollout import rollout_state

    store, name = store_of(args)
    settings = platform_settings()
    spec = next((s for s in platform_pipelines(settings) if s.model_name == name), None)
    if spec is None:
        raise MlPlatformError(f"no pipeline of the pipelines file serves model {name!r}: its rollout rules are there")
    pipeline = PipelineRuntime(spec, settings)
    if store.pointer(name) is None:
        raise MlPlatformError(f"model {name!r} has no production version in {store.uri(name)}")
    state = rollout_state(_evidence_days(pipeline), pipeline, store, clock.now())
    if args.action in ("promote", "abort"):
        return _by_hand(args, pipeline, store, state)
    if args.json:
        print(json.dumps({"model": name, **state.to_dict(), "history": _history(store, name)}, indent=2))
        return 0
    _print_state(name, state)
    return 0


def _evidence_days(pipeline) -> dict:
    """The days' evidence from the Dagster instance of DAGSTER_HOME (none without one, said)."""
    from ml_platform.sensors.rollout import evidence_days

    return from_instance(lambda instance: evidence_days(instance, pipeline), "no rollout evidence") or {}


def _by_hand(args: argparse.Namespace, pipeline, store, state) -> int:
    """Promote or abort the open candidate by hand: the same pointer moves, history and message as
    the rollout sensor's, with the person as the actor."""
    from ml_platform import rollout as rules
    from ml_platform.resources.notifier import NotificationError, notifier_from_env
    from ml_platform.sensors.rollout import DONE, announce

    name = pipeline.model_name
    if state.candidate is None:
        raise MlPlatformError(f"model {name!r} has no open candidate to {args.action}")
    actor = f"ml-platform rollout by {getpass.getuser()}"
    reason = f"by hand: {args.reason}" if args.reason else "by hand"
    if state.verdict is not None:
        reason += f" (the rules said: {state.verdict.action}, {state.verdict.reason})"
    act = rules.promote_candidate if args.action == "promote" else rules.abort_candidate
    act(store, name, reason, actor)
    print(f"{name}: {DONE[args.action]} candidate {state.candidate.version} ({reason})")
    try:
        announce(notifier_from_env(os.environ), pipeline, args.action, state.candidate.version, reason, state)
    except NotificationError as exc:
        print(f"note: the decision stands, its message failed: {exc}", file=sys.stderr)
    return 0


def _history(store, name: str) -> list[dict]:
    """Both pointers' moves, oldest first, each with its role."""
    moves = [{"role": "production", **p.to_dict()} for p in store.history(name)]
    moves += [{"role": "candidate", **p.to_dict()} for p in store.history(name, "candidate")]
    return sorted(moves, key=lambda move: move["promoted_at"])


def _print_state(name: str, state) -> None:
    production, candidate = state.production, state.candidate
    print(f"{name}: rollout {state.strategy}")
    print(f"  production  {production.version}  since {production.promoted_at}")
    if candidate is None:
        print("  candidate   none")
    else:
        print(f"  candidate   {candidate.version}  since {candidate.promoted_at}")
    evidence = state.evidence
    if evidence is not None:
        _print_evidence(evidence)
    if state.verdict is not None:
        print(f"  today       {state.verdict.action}: {state.verdict.reason}")
    if state.rollback is not None:
        print(f"  rollback    {state.rollback.action}: {state.rollback.reason}")


def _print_evidence(evidence) -> None:
    c, p, d = evidence.candidate_score, evidence.production_score, evidence.difference
    print(f"  days        {len(evidence.days)} ({', '.join(evidence.days) or '-'})")
    rate = evidence.error_rate
    print(
        f"  rows        {evidence.candidate_rows:,} of the candidate, {evidence.candidate_refused:,} refused or failed"
        + (f" ({rate:.2%})" if rate is not None else "")
    )
    for role, score in (("candidate", c), ("production", p)):
        if score.value is not None:
            spread = f" ± {1.96 * score.se:.4f}" if score.se is not None else ""
            print(f"  {role:<11} {evidence.metric} {score.value:.4f}{spread} on {score.labelled:,} labelled rows")
    if d.value is not None:
        spread = f" ± {1.96 * d.se:.4f}" if d.se is not None else ""
        how = "paired" if evidence.paired else "two groups"
        print(f"  difference  {d.value:+.4f}{spread} (candidate − production, {how}, 95 %)")
    if evidence.disagreement is not None:
        print(f"  disagree    {evidence.disagreement:.2%} of the rows both predicted")
    for role, value in (("candidate", evidence.candidate_estimate), ("production", evidence.production_estimate)):
        if value is not None:
            print(f"  estimated   {role} accuracy {value:.4f} (before labels; docs/rollout.md)")


def add_commands(sub) -> None:
    rollout = sub.add_parser(
        "rollout",
        help="a model's rollout: the candidate, its live evidence, what the rules decide; promote or abort by hand",
        description="Print where a model's rollout stands: the strategy, production and the candidate, the evidence"
        " so far (rows, refusals, the gate metric with 95 % intervals, the paired difference, disagreement, the"
        " label-free estimate) and what the rules of `rollout:` would decide today. `rollout promote` and"
        " `rollout abort` decide by hand, recorded in the pointers' history and announced like the sensor's"
        " decisions. The evidence is read from the Dagster instance of DAGSTER_HOME.",
    )
    rollout.add_argument("action", nargs="?", default="status", choices=["status", "promote", "abort"])
    rollout.add_argument("--model", help="model name (default: ML_PLATFORM_MODEL_NAME)")
    rollout.add_argument("--reason", help="why, for the history (promote, abort)")
    rollout.add_argument("--json", action="store_true", help="print JSON (status), with both pointers' history")
    add_store_dir(rollout)
    rollout.set_defaults(func=cmd_rollout)
