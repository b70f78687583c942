"""What an asset's materialization records for the code that reads it back: sensors and the CLI.

A sensor that decides from an asset's metadata (the decay sensor from live_metrics, the late-label
sensor from outcomes, the notifications from deployed_model) reads it through one of these records,
never by a label typed at the reader. Each record's keys are named once, here; the asset writes
them with ``to_metadata`` and the reader gets them back with ``from_metadata``. The keys are what the
UI shows too, so renaming one renames the writer and every reader at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ml_platform.metrics import METRIC_LABELS


class _Keyed:
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The fixed keys the record writes (a metric's score has a key of its own: metric_key)."""
        return tuple(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


def plain_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A materialization's metadata as plain values (Dagster wraps each in a MetadataValue)."""
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def metric_key(metric: str) -> str:
    """The key of a test score in deployed_model's metadata: the metric's label ("Accuracy")."""
    return METRIC_LABELS.get(metric, metric)


def live_metric_key(metric: str) -> str:
    """The key of a live score in live_metrics' metadata ("Live accuracy")."""
    return f"Live {metric_key(metric).lower()}"


@dataclass(frozen=True)
class DeployedRecord(_Keyed):
    """What deployed_model tells the deploy and finished-run notifications: which version, whether it
    became production, and why."""

    VERSION: ClassVar[str] = "Version"
    PROMOTED: ClassVar[str] = "Promoted"
    OUTCOME: ClassVar[str] = "Outcome"
    LOCATION: ClassVar[str] = "Location"
    GATE_METRIC: ClassVar[str] = "Gate metric"
    CANDIDATE: ClassVar[str] = "Candidate"

    version: str
    promoted: bool
    outcome: str
    location: str
    gate_metric: str
    gate_score: float | None = None
    candidate: bool = False  # it became the rollout's candidate (production did not move)

    def to_metadata(self) -> dict[str, Any]:
        metadata = {
            self.VERSION: self.version,
            self.PROMOTED: self.promoted,
            self.OUTCOME: self.outcome,
            self.LOCATION: self.location,
            self.GATE_METRIC: self.gate_metric,
            self.CANDIDATE: self.candidate,
        }
        if self.gate_score is not None:
            metadata[metric_key(self.gate_metric)] = float(self.gate_score)
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> DeployedRecord:
        values = plain_values(metadata)
        metric = str(values.get(cls.GATE_METRIC, ""))
        score = values.get(metric_key(metric)) if metric else None
        return cls(
            version=str(values.get(cls.VERSION, "?")),
            promoted=bool(values.get(cls.PROMOTED, False)),
            outcome=str(values.get(cls.OUTCOME, "-")),
            location=str(values.get(cls.LOCATION, "-")),
            gate_metric=metric,
            gate_score=float(score) if score is not None else None,
            candidate=bool(values.get(cls.CANDIDATE, False)),
        )


@dataclass(frozen=True)
class OutcomesRecord(_Keyed):
    """What outcomes[day] tells the late-label sensor: the days of the predictions its labels are
    about, whose live_metrics it then scores again."""

    DAYS_LABELLED: ClassVar[str] = "Days labelled"

    days_labelled: tuple[str, ...]

    def to_metadata(self) -> dict[str, Any]:
        return {self.DAYS_LABELLED: ", ".join(self.days_labelled)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> OutcomesRecord:
        text = str(plain_values(metadata).get(cls.DAYS_LABELLED) or "")
        return cls(tuple(day for day in text.split(", ") if day))


@dataclass(frozen=True)
class LiveMetricsRecord(_Keyed):
    """What live_metrics[day] tells the decay sensor and ``ml-platform monitor``: how many answered
    rows the day had, how many have an outcome, and the live score of each metric (over all versions)."""

    ANSWERED_ROWS: ClassVar[str] = "Answered rows"
    LABELLED_ROWS: ClassVar[str] = "Labelled rows"
    LABELLED_SHARE: ClassVar[str] = "Labelled share"

    answered_rows: int
    labelled_rows: int
    labelled_share: float
    scores: Mapping[str, float] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        # Floats, so that the UI plots them day by day.
        metadata = {
            self.ANSWERED_ROWS: float(self.answered_rows),
            self.LABELLED_ROWS: float(self.labelled_rows),
            self.LABELLED_SHARE: float(self.labelled_share),
        }
        metadata.update({live_metric_key(metric): float(value) for metric, value in self.scores.items()})
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> LiveMetricsRecord:
        values = plain_values(metadata)
        scores = {m: float(values[live_metric_key(m)]) for m in METRIC_LABELS if live_metric_key(m) in values}
        return cls(
            answered_rows=int(values.get(cls.ANSWERED_ROWS, 0)),
            labelled_rows=int(values.get(cls.LABELLED_ROWS, 0)),
            labelled_share=float(values.get(cls.LABELLED_SHARE, 0.0)),
            scores=scores,
        )

    def score(self, metric: str) -> float | None:
        return self.scores.get(metric)


@dataclass(frozen=True)
class RolloutRecord(_Keyed):
    """What rollout[day] tells the rollout sensor and ``ml-platform rollout``: the day's evidence
    (``rollout.DayEvidence``: per model and per pair of models on the same rows), as JSON."""

    EVIDENCE: ClassVar[str] = "Evidence"

    evidence: dict[str, Any]

    def to_metadata(self) -> dict[str, Any]:
        return {self.EVIDENCE: self.evidence}  # a dict: Dagster keeps it as JSON metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> RolloutRecord:
        value = plain_values(metadata).get(cls.EVIDENCE)
        return cls(value if isinstance(value, dict) else {})
