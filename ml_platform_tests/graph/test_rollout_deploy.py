"""deployed_model under a rollout: a gated version becomes the candidate beside production (the
first version of a model is promoted: nothing to earn its place against), a newer one replaces it,
the same recipe again changes nothing, and a version the live evidence aborted is not proposed again."""

import dagster as dg

from ml_platform_tests.support.pipelines import built_from, ingest_and_train, seed
from ml_platform_tests.support.results import step_errors

MODEL = "rolled"


def pipeline(trees: int) -> str:
    return f"""
pipelines:
  - name: rolled
    landing: rolled
    target: target
    model_name: {MODEL}
    model: {{estimator: random_forest, params: {{n_estimators: {trees}, max_depth: 4}}}}
    gate: {{min_accuracy: 0.8, max_regression: 0.1}}
    monitoring: {{}}
    rollout: {{strategy: shadow}}
"""


def deployed(result: dg.ExecuteInProcessResult) -> dict:
    assert result.success, step_errors(result)
    (materialization,) = result.asset_materializations_for_node("rolled__deployed_model")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_a_gated_version_becomes_the_candidate_and_production_waits(platform):
    seed(platform, "rolled", "breast_cancer", "target")
    store = platform.store

    first = deployed(ingest_and_train(platform, built_from(pipeline(10))))
    assert first["Promoted"] is True and first["Candidate"] is False  # the first version: promoted
    production = store.production(MODEL).version

    second = deployed(ingest_and_train(platform, built_from(pipeline(20))))
    assert second["Candidate"] is True and second["Promoted"] is False
    assert second["Outcome"] == "became the shadow candidate"
    assert store.production(MODEL).version == production
    candidate = store.candidate(MODEL)
    assert candidate.version == second["Version"] and candidate.previous is None

    again = deployed(ingest_and_train(platform, built_from(pipeline(20))))  # the same recipe
    assert again["Outcome"] == "already the shadow candidate"
    assert len(store.history(MODEL, "candidate")) == 1

    third = deployed(ingest_and_train(platform, built_from(pipeline(30))))
    assert third["Outcome"] == f"became the shadow candidate, replacing candidate {second['Version']}"
    assert store.candidate(MODEL).previous == second["Version"]
    assert store.production(MODEL).version == production

    store.close_candidate(MODEL, "aborted", "worse on live outcomes")
    refused = deployed(ingest_and_train(platform, built_from(pipeline(30))))
    assert refused["Outcome"].startswith(f"kept production: {third['Version']} was aborted as the candidate")
    assert store.candidate(MODEL) is None and store.production(MODEL).version == production
