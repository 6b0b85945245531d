"""The smallest end-to-end check: a Spark job through the operator, under the real scheduler."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_platform_smoke_runs_under_the_scheduler(run_dag, airflow_client, spark, env):
    from mlops_core.jobs.smoke import SMOKE_TABLE
    from mlops_core.lakehouse import Lakehouse

    run = run_dag("churn__platform_smoke", {"rows": 25}, logical_date="2026-03-01T00:00:00Z")
    assert run["state"] == "success", run["task_instances"]
    result = airflow_client.xcom("churn__platform_smoke", run["dag_run_id"], "delta_round_trip")
    assert result["versions"] == {"2026-03-01": 0}

    table = Lakehouse(env, "churn").read(spark, SMOKE_TABLE)
    rows = table.where("date = '2026-03-01'").collect()
    assert len(rows) == 25
    assert {r.run_id for r in rows} == {run["dag_run_id"]}
    log = airflow_client.task_log("churn__platform_smoke", run["dag_run_id"], "delta_round_trip")
    assert "MLOPS_RESULT" in log  # the job's own output is streamed into the task log
