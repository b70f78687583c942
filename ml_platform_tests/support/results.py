"""What a run did, read from its events: check results, materialized assets, errors."""

from collections.abc import Iterator

import dagster as dg

from ml_platform_tests.support.constants import PREFIX


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every check evaluated in a run."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def check_descriptions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """check name -> the description its result gave."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.description or ""
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The assets a run materialized; the demo pipeline's by name (``raw_data``), others by key."""
    return {e.asset_key.to_user_string().removeprefix(f"{PREFIX}/") for e in result.get_asset_materialization_events()}


def _failure_chains(result: dg.ExecuteInProcessResult) -> Iterator:
    """Every step failure's error and its causes, in order."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None:
                yield error
                error = error.cause


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    """All step failure messages of a run, joined (for asserting on error text)."""
    return "\n".join(error.message for error in _failure_chains(result))


def error_classes(result: dg.ExecuteInProcessResult) -> list[str]:
    """Class names of every step failure and its causes."""
    return [error.cls_name for error in _failure_chains(result)]
