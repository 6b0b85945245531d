"""The light registry actions in the task itself (#21 item 4): PromoteOperator moves the champion through the
MLflow hook and merges the promotion-history row with delta-rs, without a Spark session or a JVM; the row is
one Delta table that Spark reads back next to the gate's rows; a retried task rewrites its row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.promotion.registry_state import three_versions

MODEL = "promote_op_model"


class _Ti:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _java_children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True) if "java" in (p.name() or "")}


@pytest.fixture
def registry(env, monkeypatch):
    """Three versions of a model in this test's MLflow store: v1 previous champion, v2 champion, v3 rejected
    by the gate; the churn use case's model name points at it."""
    from mlops_core.config import load_use_case

    client = three_versions(env, MODEL, "rejected")
    churn = load_use_case("churn")
    cfg = churn.model_copy(update={"model": churn.model.model_copy(update={"registered_model_name": MODEL})})
    monkeypatch.setattr("mlops_core.config.load_use_case", lambda name: cfg)
    return client


def _run(params: dict, run_id: str = "manual__rollback_1") -> tuple[dict, _Ti]:
    from mlops_airflow.operators.promote import PromoteOperator

    ti = _Ti()
    op = PromoteOperator(task_id="rollback", use_case="churn", job_params=params)
    return op.execute({"ti": ti, "run_id": run_id}), ti


def test_rollback_moves_the_champion_without_spark_and_spark_reads_the_history(registry, lakehouse, spark):
    from mlops_core import tables
    from mlops_core.promotion.champion import champion_version
    from mlops_core.promotion.history import append_history, history_row, read_history

    # the gate job's row first, written by Spark (delta-spark 4.4 creates the table)
    append_history(spark, lakehouse, [history_row(model_name=MODEL, version="2", action="gate", from_version="1",
                                                  to_version="2", decision="promoted", reason="gate", dag_run_id="g",
                                                  triggered_by="scheduled")])
    java_before = _java_children()
    result, ti = _run({"action": "rollback", "target": "previous", "reason": "bad scores", "triggered_by": "alice"})
    assert _java_children() == java_before  # no JVM started by the action
    assert (result["champion_before"], result["champion_after"], result["spark"]) == ("2", "1", None)
    assert champion_version(registry, MODEL) == "1"
    assert ti.pushed["mlflow_model_version_url"].endswith(f"/models/{MODEL}/versions/1")
    rows = read_history(spark, lakehouse)  # Spark reads delta-rs's commit
    assert [(r["action"], r["from_version"], r["to_version"], r["triggered_by"]) for r in rows] == [
        ("gate", "1", "2", "scheduled"), ("rollback", "2", "1", "alice")]
    assert result["history_version"] == lakehouse.version(spark, tables.PROMOTION_HISTORY)


def test_a_retried_approval_rewrites_its_row(registry, lakehouse):
    from deltalake import DeltaTable

    from mlops_core import tables
    from mlops_core.promotion.champion import DECISION_TAG, champion_version

    registry.set_model_version_tag(MODEL, "1", DECISION_TAG, "awaiting_approval")
    params = {"action": "approve", "version": 1, "reason": "Approve by bob", "triggered_by": "bob"}
    first, _ = _run(params, "manual__approve")
    again, _ = _run(params, "manual__approve")  # the task's retry: the version is champion already
    assert first["champion_after"] == again["champion_after"] == "1" == champion_version(registry, MODEL)
    rows = DeltaTable(lakehouse.path(tables.PROMOTION_HISTORY)).to_pyarrow_table().to_pylist()
    assert [(r["action"], r["version"], r["triggered_by"]) for r in rows] == [("approve", "1", "bob")]
    assert again["history_version"] == first["history_version"] + 1


def test_refused_requests_record_nothing(registry, lakehouse):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.retry import classify
    from mlops_core import tables
    from mlops_core.promotion.champion import PromotionError, champion_version

    with pytest.raises(PromotionError, match="rejected by the gate") as refused:
        _run({"action": "rollback", "target": "3", "reason": "try it"})
    assert classify(refused.value) == "refused"  # the retry policy fails it at once
    with pytest.raises(AirflowFailException, match="reason"):
        _run({"action": "rollback", "target": "previous"})
    assert champion_version(registry, MODEL) == "2"
    assert not Path(lakehouse.path(tables.PROMOTION_HISTORY)).exists()


def test_the_history_on_s3_is_merged_without_spark(tmp_path, monkeypatch):
    """An s3:// lakehouse: delta-rs commits with conditional PUT on the S3 server (moto here); a retried row is
    rewritten; the JVM-free reader of the project reads the table."""
    import boto3

    from mlops_core.monitoring.delta_log import read_rows
    from mlops_core.promotion.history import history_row, merge_path_table
    from tests.objectstore import moto_server

    with moto_server(tmp_path / "moto.log") as endpoint:
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
        location = "s3a://lake/churn/ops/promotion_history"  # as an environment config may write it
        row = history_row(model_name=MODEL, version="3", action="rollback", from_version="4", to_version="3",
                          decision="rolled_back", reason="s3", dag_run_id="run1", triggered_by="me")
        assert merge_path_table(location, [row]) == 0
        assert merge_path_table(location, [row]) == 1  # the retry: same key
        merge_path_table(location, [dict(row, dag_run_id="run2")])
        rows = read_rows("s3://lake/churn/ops/promotion_history")
    assert sorted(r["dag_run_id"] for r in rows) == ["run1", "run2"]
