"""The rollout sensor: each tick, the evidence so far (every day's newest rollout[day]) decides the
open candidate's fate by the rules of ``rollout:`` — promote, abort, or wait naming what is missing
— and, with ``rollout.rollback``, whether a recent promotion is rolled back. Each decision moves a
pointer (its history says why, with the numbers) and is a notification (on_promote, on_abort,
on_rollback). ``ml-platform rollout`` reads the same state (``rollout_state``) and decides by hand
through the same functions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

from ml_platform import clock
from ml_platform import rollout as rules
from ml_platform.asset_records import RolloutRecord
from ml_platform.errors import MlPlatformError
from ml_platform.instance_queries import latest_materialization_per_partition
from ml_platform.pointer import Pointer
from ml_platform.resources.model_store import ModelStore
from ml_platform.resources.notifier import NotificationError, Notifier
from ml_platform.runtime import PipelineRuntime
from ml_platform.sensors.base import pipeline_sensor

SENSOR_ACTOR = "rollout sensor"


@dataclass(frozen=True)
class RolloutState:
    """Where a model's rollout stands: its pointers, the candidate's evidence so far and what the
    rules say today; with ``rollout.rollback``, what they say of the newest promotion."""

    strategy: str
    production: Pointer | None
    candidate: Pointer | None
    evidence: rules.Evidence | None = None
    verdict: rules.Verdict | None = None
    rollback: rules.Verdict | None = None

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "production": self.production.to_dict() if self.production else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "decision": self.verdict.to_dict() if self.verdict else None,
            "rollback": self.rollback.to_dict() if self.rollback else None,
        }


def day_of(pipeline: PipelineRuntime, moment: dt.datetime) -> str:
    """The pipeline's day (its schedule's time zone) of a moment."""
    return moment.astimezone(ZoneInfo(pipeline.timezone)).date().isoformat()


def evidence_days(instance: dg.DagsterInstance, pipeline: PipelineRuntime) -> dict[str, rules.DayEvidence]:
    """Every day's evidence, from its newest rollout[day] materialization."""
    latest = latest_materialization_per_partition(instance, pipeline.key("rollout"))
    return {
        day: rules.DayEvidence.from_dict(RolloutRecord.from_metadata(record.asset_materialization.metadata).evidence)
        for day, record in latest.items()
    }


def rollout_state(
    days: dict[str, rules.DayEvidence], pipeline: PipelineRuntime, store: ModelStore, now: dt.datetime
) -> RolloutState:
    """The rollout of ``pipeline``'s model at ``now``, from the days' evidence and the store's pointers."""
    spec, name = pipeline.spec.rollout, pipeline.model_name
    production, candidate = store.pointer(name), store.candidate(name)
    state = RolloutState(spec.strategy, production, candidate)
    if candidate is not None and not spec.uses_candidate:  # left by an earlier shadow or canary
        said = f"strategy direct: candidate {candidate.version} is not served nor judged (ml-platform rollout abort)"
        state = RolloutState(spec.strategy, production, candidate, verdict=rules.Verdict("wait", said))
    elif candidate is not None and production is not None:
        # Its days: from the first one it predicted on (the log's days follow the platform's clock;
        # the pointer's time is the wall clock's), or the day it became the candidate.
        seen = [d for d, e in days.items() if e.of(candidate.version, rules.CANDIDATE)]
        since = min(seen, default=day_of(pipeline, candidate.promoted_time))
        evidence = rules.gather({d: e for d, e in days.items() if d >= since}, candidate.version, production.version)
        days_open = (dt.date.fromisoformat(day_of(pipeline, now)) - dt.date.fromisoformat(since)).days
        verdict = rules.decide(spec, evidence, pipeline.spec.gate_higher_is_better, days_open)
        state = RolloutState(spec.strategy, production, candidate, evidence, verdict)
    if spec.rollback is not None and production is not None:
        state = RolloutState(**{**state.__dict__, "rollback": _rollback(days, pipeline, production, now)})
    return state


def _rollback(
    days: dict[str, rules.DayEvidence], pipeline: PipelineRuntime, production: Pointer, now: dt.datetime
) -> rules.Verdict | None:
    """What ``rollout.rollback`` says of the newest promotion: the promoted version's first days as
    production against the replaced version's last days before them. None when there is nothing to
    watch (no earlier version, a rollback itself, or a promotion older than its days and the labels'
    delay). The swap's day is read off the traffic: the first day the promoted version answered."""
    rollback = pipeline.spec.rollout.rollback
    version, previous = production.version, production.previous
    if not previous or (production.reason or "").startswith(rules.ROLLED_BACK):
        return None
    answered = sorted(d for d, e in days.items() if e.of(version, rules.PRODUCTION))
    if not answered:
        return rules.Verdict("wait", f"{version} has answered no day of traffic yet")
    start = answered[0]
    watched = rollback.days + pipeline.spec.feedback.max_delay_days
    if (dt.date.fromisoformat(day_of(pipeline, now)) - dt.date.fromisoformat(start)).days > watched:
        return None
    before = sorted(d for d, e in days.items() if d <= start and e.of(previous, rules.PRODUCTION))
    new = _pooled(days, answered[: rollback.days], version)
    old = _pooled(days, before[-rollback.days :], previous)
    return rules.rollback_verdict(rollback, new, old, pipeline.spec.gate_higher_is_better, (version, previous))


def _pooled(days: dict[str, rules.DayEvidence], chosen: list[str], version: str) -> rules.Pooled:
    found = [e.of(version, rules.PRODUCTION) for day, e in days.items() if day in chosen]
    return rules.Pooled.of([(v.labelled, v.score, v.score_se) for v in found if v is not None])


def carry_out(
    state: RolloutState, pipeline: PipelineRuntime, store: ModelStore, notifier: Notifier | None, actor: str
) -> list[str]:
    """Act on what the rules say (promote, abort, roll back), announce it, and say what was done."""
    name, done = pipeline.model_name, []
    verdict, candidate = state.verdict, state.candidate
    if verdict is not None and verdict.action in ("promote", "abort"):
        if verdict.action == "promote":
            rules.promote_candidate(store, name, verdict.reason, actor)
        else:
            rules.abort_candidate(store, name, verdict.reason, actor)
        done.append(f"{DONE[verdict.action]} candidate {candidate.version}: {verdict.reason}")
        announce(notifier, pipeline, verdict.action, candidate.version, verdict.reason, state)
    elif state.rollback is not None and state.rollback.action == "rollback":
        restored = state.production.previous
        rules.roll_back(store, name, state.rollback.reason, actor)
        done.append(f"rolled {state.production.version} back to {restored}: {state.rollback.reason}")
        announce(notifier, pipeline, "rollback", state.production.version, state.rollback.reason, state)
    return done


DONE = {"promote": "promoted", "abort": "aborted"}
EVENTS = {"promote": "on_promote", "abort": "on_abort", "rollback": "on_rollback"}
TITLES = {"promote": "candidate promoted", "abort": "candidate aborted", "rollback": "promotion rolled back"}


def announce(
    notifier: Notifier | None, pipeline: PipelineRuntime, action: str, version: str, reason: str, state: RolloutState
) -> None:
    """The decision's message, with the numbers (a channel that fails is warned about by the caller)."""
    if notifier is None:
        return
    fields = {
        "Pipeline": pipeline.name,
        "Model": pipeline.model_name,
        "Strategy": state.strategy,
        "Version": version,
        "Production before": state.production.version if state.production else "-",
        "Decision": action,
        "Why": reason,
    }
    notifier.send(
        f"ml_platform {TITLES[action]}: {pipeline.model_name} {version}",
        [reason],
        fields,
        route=pipeline.spec.notifications.route(EVENTS[action]),
    )


def build_rollout_sensor(pipeline: PipelineRuntime) -> dg.SensorDefinition:
    rollout = pipeline.spec.rollout

    @pipeline_sensor(
        pipeline,
        "rollout_sensor",
        f"Decides {pipeline.model_name}'s rollout ({rollout.strategy}) on the live evidence of rollout[day]:"
        " promotes or aborts the candidate, or rolls back a promotion that turned worse, and says why.",
    )
    def rollout_sensor(context: dg.SensorEvaluationContext, model_store: ModelStore, notifier: Notifier):
        days = evidence_days(context.instance, pipeline)
        state = rollout_state(days, pipeline, model_store, clock.now())
        try:
            done = carry_out(state, pipeline, model_store, notifier, SENSOR_ACTOR)
        except NotificationError as exc:  # the decision stands (the pointers moved); its message did not go
            context.log.warning(f"rollout of {pipeline.model_name}: decided, but the message failed: {exc}")
            return dg.SkipReason("decided; the notification failed (see the log)")
        except MlPlatformError as exc:  # a pointer moved meanwhile: decided again at the next tick
            return dg.SkipReason(f"not decided this tick: {exc}")
        for line in done:
            context.log.info(line)
        if done:
            return dg.SkipReason("; ".join(done))
        said = [s.reason for s in (state.verdict, state.rollback) if s is not None]
        return dg.SkipReason("; ".join(said) or f"{pipeline.model_name} has no open candidate nor a promotion to watch")

    return rollout_sensor
