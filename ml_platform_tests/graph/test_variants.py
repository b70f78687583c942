"""Hyperparameter variants: static partitions of variant_model (day x variant), one run each, chained
by the variants sensor; the best by cross-validation becomes the challenger."""

import os
import signal
import subprocess
import textwrap
import time

import dagster as dg
import pytest

from ml_platform.errors import ConfigError
from ml_platform.jobs import retrain_keys
from ml_platform.settings import load_settings
from ml_platform.spec import parse_pipelines
from ml_platform_tests.support.constants import BIN, DAYS, END_DAY, ROOT
from ml_platform_tests.support.good_platform import deployed  # noqa: F401 (fixtures, used by name)
from ml_platform_tests.support.pipelines import built_from, seed
from ml_platform_tests.support.platform import production_json, project_env
from ml_platform_tests.support.results import check_results, step_errors
from ml_platform_tests.support.variants import STRONG, VARIANTS_YAML, WEAK


# A stump of one tree against a proper forest: the data decides which is better, and it is clear.
@pytest.fixture(scope="module")
def churn():
    return built_from(VARIANTS_YAML)


def keys(*names):
    return [dg.AssetKey(["churn", n]) for n in names]


def ingest_and_split(platform, built, day=END_DAY):
    """The pipeline's job, as its schedule runs it: with variants it stops at the splits."""
    ingest = dg.materialize(
        built.definitions,
        selection=keys("raw_data"),
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert ingest.success, step_errors(ingest)
    result = dg.materialize(
        built.definitions,
        selection=retrain_keys(built.pipeline),
        partition_key=day,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    assert result.success, step_errors(result)
    return result


def definitions(platform, built) -> dg.Definitions:
    return dg.Definitions(
        assets=built.assets,
        asset_checks=built.checks,
        jobs=built.jobs,
        sensors=built.sensors,
        resources=platform.resources,
    )


def tick(platform, built, cursor=None):
    """One evaluation of the variants sensor, as the daemon runs it: its requests and cursor."""
    sensor = built.sensor("variants_sensor")
    with dg.build_sensor_context(
        instance=platform.instance, cursor=cursor, sensor_name=sensor.name, definitions=definitions(platform, built)
    ) as context:
        result = sensor.evaluate_tick(context)
    return result.run_requests or [], result.cursor


def execute(platform, built, request):
    """A request of the variants sensor, executed as the daemon would: its job's assets, its partition."""
    selection = {
        "churn_variants": keys("variant_model"),
        "churn_select_and_deploy": keys("trained_model", "model_metrics", "deployed_model"),
    }[request.job_name]
    return dg.materialize(
        built.definitions,
        selection=selection,
        partition_key=str(request.partition_key),
        instance=platform.instance,
        resources=platform.resources,
        tags=request.tags,
        raise_on_error=False,
    )


# -- the file --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variants", "says"),
    [
        ("[{max_depth: 5}, {max_dept: 10}]", "pipelines[0] (churn): model.variants[1].max_dept: unknown"),
        ("[{max_depth: 0}]", "model.variants[0].max_depth: Input should be greater than or equal to 1"),
        ("[{max_depth: 5}, {max_depth: 5}]", "model.variants[1]: duplicate of model.variants[0] (max_depth=5)"),
        ("[{max_depth: 5}, {max_depth: '5'}]", "model.variants[1]: duplicate of model.variants[0] (max_depth=5)"),
        ("[{}]", "model.variants[0]: empty"),
        ("[{max_features: 'a|b'}]", "model.variants[0]"),
    ],
)
def test_bad_variants_fail_at_load_naming_the_entry_and_field(variants, says):
    text = f"pipelines:\n  - name: churn\n    model: {{estimator: random_forest, variants: {variants}}}\n"
    with pytest.raises(ConfigError) as error:
        parse_pipelines(text, "pipelines.yaml", load_settings())
    assert str(error.value).startswith("pipelines.yaml: ")
    assert says in str(error.value)


def test_variants_are_static_partitions_of_variant_model_in_a_job_of_their_own(platform, churn):
    pipeline = churn.pipeline
    assert list(pipeline.variants) == [WEAK, STRONG]
    assert pipeline.variants[WEAK] == {**pipeline.spec.model.params, "max_depth": 1, "n_estimators": 1}
    variant_model = next(a for a in churn.assets if dg.AssetKey(["churn", "variant_model"]) in a.keys)
    partitions = variant_model.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions.partitions_defs} == {"date", "variant"}
    assert [j.name for j in churn.jobs] == ["churn_training", "churn_variants", "churn_select_and_deploy"]
    defs = definitions(platform, churn)
    assert {k.path[1] for k in defs.resolve_job_def("churn_training").asset_layer.executable_asset_keys} == {
        "raw_data",
        "training_data",
        "train_split",
        "test_split",
    }
    assert {k.path[1] for k in defs.resolve_job_def("churn_variants").asset_layer.executable_asset_keys} == {
        "variant_model"
    }
    select = defs.resolve_job_def("churn_select_and_deploy")
    assert {k.path[1] for k in select.asset_layer.executable_asset_keys} == {
        "trained_model",
        "model_metrics",
        "deployed_model",
    }
    # The deploy gate runs with the model it gates.
    assert {c.name for c in select.asset_layer.asset_graph.asset_check_keys if c.asset_key.path[1] == "model_metrics"}


# -- the chain, as the daemon runs it --------------------------------------------------------------
def test_each_variant_trains_in_its_own_run_and_the_best_is_deployed(platform, churn):
    seed(platform, "churn", "breast_cancer", "target")
    ingest_and_split(platform, churn)

    requests, cursor = tick(platform, churn)
    assert sorted((r.job_name, str(r.partition_key)) for r in requests) == sorted(
        [("churn_variants", f"{END_DAY}|{STRONG}"), ("churn_variants", f"{END_DAY}|{WEAK}")]
    )
    assert len({r.run_key for r in requests}) == 2
    for request in requests:
        result = execute(platform, churn, request)
        assert result.success, step_errors(result)
        meta = result.asset_materializations_for_node("churn__variant_model")[0].metadata
        variant = str(request.partition_key).split("|")[1]
        assert meta["Variant"].value == variant
        assert 0 < meta["CV accuracy"].value <= 1
    assert not platform.store.list_versions("churn")  # nothing deployed by the variants themselves

    (select,), cursor = tick(platform, churn, cursor)
    assert select.job_name == "churn_select_and_deploy" and select.partition_key == END_DAY
    result = execute(platform, churn, select)
    assert result.success, step_errors(result)
    assert check_results(result) == {"accuracy_above_threshold": True, "signature_matches_production": True}
    chosen = result.asset_materializations_for_node("churn__trained_model")[0].metadata
    assert chosen["Chosen variant"].value == STRONG
    table = {r.data["Variant"]: r.data for r in chosen["Variants"].value.records}
    assert set(table) == {WEAK, STRONG}
    assert table[STRONG]["Chosen"] and not table[WEAK]["Chosen"]
    assert table[STRONG]["CV accuracy"] > table[WEAK]["CV accuracy"]
    assert chosen["Params"].value["max_depth"] == 8 and len(chosen["Feature importances"].value.records) > 0

    production = platform.store.production("churn")
    assert production.metadata["variant"] == STRONG
    assert production.metadata["params"]["max_depth"] == 8
    assert production.metadata["params"]["n_estimators"] == 30

    # Nothing new: nothing requested. A new split of the day: the variants again, then once more a choice.
    assert tick(platform, churn, cursor)[0] == []
    ingest_and_split(platform, churn)
    again, cursor = tick(platform, churn, cursor)
    assert len(again) == 2 and not {r.run_key for r in again} & {r.run_key for r in requests}


def test_the_deployed_variant_is_reused_when_its_recipe_is_unchanged(platform, churn):
    seed(platform, "churn", "breast_cancer", "target")
    ingest_and_split(platform, churn)
    requests, cursor = tick(platform, churn)
    first = {str(r.partition_key).split("|")[1]: execute(platform, churn, r) for r in requests}
    (select,), cursor = tick(platform, churn, cursor)
    assert execute(platform, churn, select).success
    production = platform.store.production("churn")
    assert production.metadata["variant"] == STRONG

    # The same partitions again (a re-execution, the sensor after a retry): no variant is fitted
    # again. The deployed one is loaded from the model store, the other from its own stored output
    # (Dagster recorded its recipe as the partition's data version).
    for request in requests:
        variant = str(request.partition_key).split("|")[1]
        again = execute(platform, churn, request)
        assert again.success, step_errors(again)
        meta = again.asset_materializations_for_node("churn__variant_model")[0].metadata
        before = first[variant].asset_materializations_for_node("churn__variant_model")[0].metadata
        assert meta["CV accuracy"].value == before["CV accuracy"].value
        if variant == STRONG:
            assert meta["Reused"].value == f"{production.version} (same recipe)"
        else:
            assert meta["Reused"].value == f"stored {request.partition_key} (same recipe)"
    assert execute(platform, churn, select).success
    assert [v.version for v in platform.store.list_versions("churn")] == [production.version]


def test_turned_on_the_sensor_starts_from_the_newest_split_and_a_day_split_twice_trains_once(platform, churn):
    seed(platform, "churn", "breast_cancer", "target")
    ingest_and_split(platform, churn, DAYS[-2])
    ingest_and_split(platform, churn, DAYS[-1])
    requests, cursor = tick(platform, churn)
    assert {str(r.partition_key).split("|")[0] for r in requests} == {DAYS[-1]}  # not the history
    for _ in range(2):  # the same day split again twice before the next tick
        ingest_and_split(platform, churn, DAYS[-2])
    again, _ = tick(platform, churn, cursor)
    assert sorted(str(r.partition_key) for r in again) == sorted(f"{DAYS[-2]}|{v}" for v in (WEAK, STRONG))


def test_choosing_before_every_variant_is_fitted_fails_and_names_what_is_missing(platform, churn):
    seed(platform, "churn", "breast_cancer", "target")
    ingest_and_split(platform, churn)
    requests, cursor = tick(platform, churn)
    weak = next(r for r in requests if str(r.partition_key).endswith(WEAK))
    assert execute(platform, churn, weak).success
    assert tick(platform, churn, cursor)[0] == []  # the sensor waits for the other variant

    early = dg.materialize(
        churn.definitions,
        selection=keys("trained_model", "model_metrics", "deployed_model"),
        partition_key=END_DAY,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    assert not early.success
    assert f"not trained: {STRONG}" in step_errors(early)
    assert not platform.store.list_versions("churn")


def test_variants_of_an_older_split_are_not_chosen(platform, churn):
    seed(platform, "churn", "breast_cancer", "target")
    ingest_and_split(platform, churn)
    requests, _ = tick(platform, churn)
    for request in requests:
        assert execute(platform, churn, request).success
    # A different split of the same day: the fitted variants no longer match it.
    resplit = dg.materialize(
        churn.definitions,
        selection=keys("train_split", "test_split"),
        partition_key=END_DAY,
        instance=platform.instance,
        resources=platform.resources,
        run_config={"ops": {"churn__splits": {"config": {"random_state": 7}}}},
        raise_on_error=False,
    )
    assert resplit.success, step_errors(resplit)
    stale = dg.materialize(
        churn.definitions,
        selection=keys("trained_model", "model_metrics", "deployed_model"),
        partition_key=END_DAY,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    assert not stale.success
    assert "trained on an older train split" in step_errors(stale)


def test_a_regression_chooses_the_lowest_error_and_variants_fit_within_the_train_timeout(platform):
    """Errors are chosen low (max_rmse gate), and stages.train.timeout_s fits each variant, cross-
    validation included, in a child process."""
    built = built_from("""
        pipelines:
          - name: churn
            task: regression
            target: progression
            landing: churn
            model:
              estimator: hist_gradient_boosting
              params: {learning_rate: 0.05}
              variants: [{max_iter: 100}, {max_iter: 1}]
            gate: {max_rmse: 80, max_regression: 5}
            stages: {train: {timeout_s: 300}}
    """)
    seed(platform, "churn", "diabetes", "progression")
    ingest_and_split(platform, built)
    scores = {}
    for variant in built.pipeline.variants:
        result = dg.materialize(
            built.definitions,
            selection=keys("variant_model"),
            partition_key=f"{END_DAY}|{variant}",
            instance=platform.instance,
            resources=platform.resources,
            raise_on_error=False,
        )
        assert result.success, step_errors(result)
        scores[variant] = result.asset_materializations_for_node("churn__variant_model")[0].metadata["CV rmse"].value
        logs = [e.message for e in platform.instance.all_logs(result.run_id)]
        assert any("fitting in a child process" in m for m in logs)
    assert scores["max_iter=1"] > scores["max_iter=100"] > 0  # one boosting step barely learns
    result = dg.materialize(
        built.definitions,
        selection=keys("trained_model", "model_metrics", "deployed_model"),
        partition_key=END_DAY,
        instance=platform.instance,
        resources=platform.resources,
        raise_on_error=False,
    )
    assert result.success, step_errors(result)
    assert (
        result.asset_materializations_for_node("churn__trained_model")[0].metadata["Chosen variant"].value
        == "max_iter=100"
    )
    assert check_results(result) == {"rmse_below_threshold": True, "signature_matches_production": True}
    assert platform.store.production("churn").metadata["variant"] == "max_iter=100"


# -- through the CLI -------------------------------------------------------------------------------
def test_a_pipeline_with_variants_through_the_cli(tmp_path):
    """docs/assets-and-checks.md's commands for a pipeline with variants: splits, one command per variant, choose."""
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(textwrap.dedent(VARIANTS_YAML))
    env = {**project_env(tmp_path), "ML_PLATFORM_PIPELINES": str(pipelines)}
    dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions"]
    steps = [
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY],
        [*dagster, "--select", "key:churn/raw_data", "--partition", END_DAY],
        [*dagster, "--select", "key:churn/training_data+ and not key:churn/variant_model+", "--partition", END_DAY],
        *([*dagster, "--select", "key:churn/variant_model", "--partition", f"{END_DAY}|{v}"] for v in (WEAK, STRONG)),
        [*dagster, "--select", "key:churn/trained_model+", "--partition", END_DAY],
    ]
    for args in steps:
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    production = production_json(env, "churn")
    assert production["variant"] == STRONG and production["params"]["max_depth"] == 8
    for variant in (WEAK, STRONG):
        assert (tmp_path / "assets" / "churn" / "variant_model" / f"{END_DAY}|{variant}.joblib").is_file()


# -- with the daemon: the sensor starts the runs, the queue runs the variants side by side -------
def test_the_daemon_trains_the_variants_in_parallel_runs_then_deploys_the_best(tmp_path):
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(textwrap.dedent(VARIANTS_YAML))
    env = {**project_env(tmp_path), "ML_PLATFORM_PIPELINES": str(pipelines), "ML_PLATFORM_SENSOR_INTERVAL_S": "1"}
    # The instance of `make instance`: queued runs, two at a time.
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(
        (ROOT / "deploy" / "dagster.local.yaml").read_text().replace("@MAX_CONCURRENT_RUNS@", "2")
    )
    dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "ml_platform.definitions"]
    for args in (
        [str(BIN / "ml-platform"), "seed-demo", "--end-day", END_DAY],
        [*dagster, "--select", "key:churn/raw_data", "--partition", END_DAY],
        [*dagster, "--select", "key:churn/training_data+ and not key:churn/variant_model+", "--partition", END_DAY],
    ):
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])

    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "ml_platform.definitions"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                runs = instance.get_runs(dg.RunsFilter(job_name="churn_select_and_deploy"))
                if runs and runs[0].is_finished:
                    break
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-4000:]
                time.sleep(1)
            else:
                pytest.fail(
                    "no select-and-deploy run finished within 300 s:\n" + (tmp_path / "daemon.log").read_text()[-4000:]
                )
            (select,) = instance.get_runs(dg.RunsFilter(job_name="churn_select_and_deploy"))
            variants = instance.get_runs(dg.RunsFilter(job_name="churn_variants"))
            assert select.is_success, step_log(instance, select)
            assert sorted(r.tags["dagster/partition"] for r in variants) == sorted(
                f"{END_DAY}|{v}" for v in (WEAK, STRONG)
            )
            assert all(r.is_success for r in variants)
            assert all(r.tags["ml_platform/trigger"] == "variants" for r in [*variants, select])
            # Side by side, not one after the other: both runs were queued (by one sensor tick) before
            # either started, so the queue starts them together up to max_concurrent_runs.
            records = [instance.get_run_record_by_id(r.run_id) for r in variants]
            assert max(r.create_timestamp.timestamp() for r in records) < min(r.start_time for r in records)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        log.close()
    assert production_json(env, "churn")["variant"] == STRONG


def step_log(instance, run) -> str:
    """The failure messages of a run, for the assertion message."""
    return "\n".join(
        str(e.dagster_event.event_specific_data.error.message)
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    )
