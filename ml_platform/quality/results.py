"""What every rule of the data contract returns (``RuleResult``, with the ``Severity`` of a failure)
and how its messages list names. Below the schema and the rules, which both return results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["block", "warn"]

# Column names listed in one message before "… and N more".
LISTED_NAMES = 10


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    warning: bool = False  # passed, but with something a person should see (logged as a warning)
    # A failure's severity: "block" (any of its failing rules blocks) or "warn" (all of them warn).
    severity: Severity = "block"
    # One row per column and rule: Column, Rule, Observed, Limit, Passed, Severity (the check's table).
    rows: tuple[dict[str, Any], ...] = ()


def names_text(names: Sequence[str]) -> str:
    """'a', 'b', 'c' … and 4 more."""
    shown = ", ".join(repr(str(n)) for n in names[:LISTED_NAMES])
    return shown + (f" … and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")
