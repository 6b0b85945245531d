"""`make demo`: the pipeline on the local stack, through the real Airflow scheduler.

1. generate the churn data set (with drift injected in the last weeks) into the landing zone;
2. start Airflow on 127.0.0.1 (unless `make up` already runs it);
3. trigger DAGs over the REST API exactly as the UI does, one after another, showing progress;
4. print a summary and where to look; 5. stop what it started.

Today it runs `platform_smoke`; `--chain` runs the whole loop (ingest → features → retrain with the gate →
batch scoring → drift reports → retrain on drift), which is not yet verified end to end: unpausing
`ingest_raw` also starts its scheduled run for yesterday, which waits for files and holds the manual backfill
(max_active_runs=1). See the open issue #10.

The runs stay in the local Airflow home: `make up` afterwards shows them in the UI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_airflow import PROJECT_ROOT, AirflowClient, LocalAirflow  # noqa: E402

START = time.monotonic()


def say(message: str) -> None:
    elapsed = time.monotonic() - START
    print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}", flush=True)


@dataclass
class Step:
    dag_id: str
    conf: dict[str, Any]
    why: str
    results: dict[str, Any] = field(default_factory=dict)


def run_step(client: AirflowClient, step: Step, timeout: float) -> dict[str, Any]:
    client.wait_for_dag(step.dag_id, timeout=180)
    client.set_paused(step.dag_id, False)
    t0 = time.monotonic()
    say(f"{step.dag_id}: {step.why}")
    run_id = client.trigger(step.dag_id, step.conf)
    seen: dict[str, str] = {}
    deadline = t0 + timeout
    while True:
        run = client.dag_run(step.dag_id, run_id)
        for ti in client.task_instances(step.dag_id, run_id):
            state = ti.get("state") or "queued"
            if seen.get(ti["task_id"]) != state and state in ("running", "success", "failed", "skipped",
                                                              "up_for_retry", "deferred"):
                seen[ti["task_id"]] = state
                say(f"  {step.dag_id}.{ti['task_id']}: {state}")
        if run["state"] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{step.dag_id} did not finish in {timeout:.0f}s")
        time.sleep(2)
    say(f"{step.dag_id}: {run['state']} in {time.monotonic() - t0:.0f}s")
    run["task_instances"] = client.task_instances(step.dag_id, run_id)
    return run


def generate_data(args: argparse.Namespace) -> None:
    say(f"generating {args.customers} customers x {args.days} days of orders (drift from {args.drift_from})")
    cmd = [
        sys.executable, "-m", "mlops_core.datagen",
        "--customers", str(args.customers), "--days", str(args.days), "--seed", "7",
        "--start", args.start, "--drift-from", args.drift_from, "--drift-kinds", "amount,country,frequency",
        "--bad-rate", "0.002", "--clean",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=PROJECT_ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per DAG run")
    parser.add_argument("--chain", action="store_true",
                        help="run the whole loop (ingest ... retrain on drift); not yet verified end to end")
    args = parser.parse_args(argv)
    start = dt.date.fromisoformat(args.start)
    end = start + dt.timedelta(days=args.days - 1)
    args.drift_from = (end - dt.timedelta(days=20)).isoformat()

    generate_data(args)
    home = Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".local" / "airflow")).resolve()
    af = LocalAirflow(home=home, port=args.port, mlflow_port=None)
    started_here = af.pid("scheduler") is None
    if started_here:
        say("starting Airflow on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer)")
        af.write_config()
        af.start()
    try:
        af.wait_until_healthy(timeout=240)
        client = af.client()
        drift_from = dt.date.fromisoformat(args.drift_from)
        steps = None if args.chain else [
            Step("platform_smoke", {"rows": 1000}, "Spark + Delta round trip through the Spark job operator")
        ]
        summary = run_chain(client, start, end, drift_from, args.timeout, steps=steps)
    finally:
        if started_here:
            say("stopping the Airflow processes this demo started")
            af.stop()
    print_summary(summary, af)
    return 0 if summary.get("ok") else 1


def chain_steps(start: dt.date, end: dt.date, drift_from: dt.date, scored_days: int = 5,
                hpo_trials: int = 8, rule: dict[str, Any] | None = None) -> list[Step]:
    """The loop, one DAG run after another, each with the Params a person would type in the UI."""
    # The first model trains on labels known before the drift starts (a label needs 30 days of future).
    train_end = drift_from - dt.timedelta(days=31)
    last_days = [end - dt.timedelta(days=i) for i in range(scored_days - 1, -1, -1)]
    steps = [
        Step("ingest_raw", {"start_date": start.isoformat(), "end_date": end.isoformat(), "wait_timeout_minutes": 0},
             f"load {start}..{end} from the landing zone into bronze (bad rows to quarantine)"),
        Step("materialize_features", {"as_of_start": start.isoformat(), "as_of_end": end.isoformat()},
             "feature snapshots for every as-of date"),
        Step("retrain_model", {"window_end": train_end.isoformat(), "hpo_trials": hpo_trials,
                               "reason": "demo: first model"},
             f"train on labels up to {train_end}, register challenger, gate, promote"),
    ]
    for day in last_days:
        steps.append(Step("batch_score", {"as_of_date": day.isoformat()}, f"score the {day} snapshot with the champion"))
        steps.append(Step("drift_report", {"date": day.isoformat()}, f"Evidently drift report for {day}"))
    steps.append(Step("retrain_on_drift", {"expected_date": end.isoformat(), "wait_minutes": 0, **(rule or {})},
                      "does the drift history call for a retrain? (k of the last n nights drifted)"))
    return steps


def run_chain(client: AirflowClient, start: dt.date, end: dt.date, drift_from: dt.date, timeout: float,
              steps: list[Step] | None = None) -> dict[str, Any]:
    """Run the steps in order; stop at the first failed run. Returns what the summary prints."""
    summary: dict[str, Any] = {"runs": [], "ok": True}
    for step in steps or chain_steps(start, end, drift_from):
        run = run_step(client, step, timeout)
        states = {t["task_id"]: t["state"] for t in run["task_instances"]}
        summary["runs"].append({"dag_id": step.dag_id, "state": run["state"], "tasks": states,
                                "run_id": run["dag_run_id"], "conf": step.conf})
        client.set_paused(step.dag_id, True)  # no cron runs of demo DAGs behind the user's back
        if run["state"] != "success":
            summary["ok"] = False
            break
        if step.dag_id == "platform_smoke":
            summary["smoke"] = client.xcom("platform_smoke", run["dag_run_id"], "delta_round_trip")
        collect(client, step.dag_id, run, summary)
    if summary["ok"]:
        follow_drift_retrain(client, summary, timeout)
    return summary


def _xcom(client: AirflowClient, dag_id: str, run: dict[str, Any], task_id: str) -> Any:
    try:
        return client.xcom(dag_id, run["dag_run_id"], task_id)
    except Exception:  # noqa: BLE001 - a summary line is missing, the demo goes on
        return None


def collect(client: AirflowClient, dag_id: str, run: dict[str, Any], summary: dict[str, Any]) -> None:
    """Pick the figures the summary shows from the tasks' results (XCom)."""
    if dag_id == "ingest_raw":
        totals = {"read": 0, "good": 0, "quarantined": 0}
        for ti in run["task_instances"]:
            if ti["task_id"].endswith(".ingest") and ti["state"] == "success":
                for counts in (_xcom(client, dag_id, run, ti["task_id"]) or {}).get("sources", {}).values():
                    for key in totals:
                        totals[key] += int(counts.get(key, 0))
        summary["ingest"] = totals
    elif dag_id == "materialize_features":
        summary["features"] = _xcom(client, dag_id, run, "materialize")
    elif dag_id == "retrain_model":
        summary.setdefault("gates", []).append(_xcom(client, dag_id, run, "validate_and_promote"))
    elif dag_id == "batch_score":
        result = _xcom(client, dag_id, run, "score") or {}
        summary["scored_rows"] = summary.get("scored_rows", 0) + int(result.get("rows_scored", 0) or 0)
        summary["champion"] = result.get("model_version", summary.get("champion"))
    elif dag_id == "drift_report":
        summary.setdefault("drift", []).append(_xcom(client, dag_id, run, "drift_report"))
    elif dag_id == "retrain_on_drift":
        summary["retrain_triggered"] = any(t["task_id"] == "trigger_retrain" and t["state"] == "success"
                                           for t in run["task_instances"])


def follow_drift_retrain(client: AirflowClient, summary: dict[str, Any], timeout: float) -> None:
    """When retrain_on_drift fired, wait for the retrain_model run it started and record its gate."""
    if not summary.get("retrain_triggered"):
        return
    client.set_paused("retrain_model", False)
    ours = {r["run_id"] for r in summary["runs"]}
    runs = [r for r in client.dag_runs("retrain_model") if r["dag_run_id"] not in ours]
    if not runs:
        return
    run = client.wait_for_run("retrain_model", runs[0]["dag_run_id"], timeout=timeout)
    client.set_paused("retrain_model", True)
    say(f"retrain_model (triggered by drift): {run['state']}")
    summary["drift_retrain"] = {"state": run["state"], "reason": (run.get("conf") or {}).get("reason")}
    summary.setdefault("gates", []).append(_xcom(client, "retrain_model", run, "validate_and_promote"))


def print_summary(summary: dict[str, Any], af: LocalAirflow) -> None:
    print("\n" + "=" * 78)
    print("Demo summary")
    print("=" * 78)
    for run in summary["runs"]:
        print(f"  {run['dag_id']:22s} {run['state']:8s} tasks: {json.dumps(run['tasks'])}")
    smoke = summary.get("smoke")
    if smoke:
        print(f"\n  Delta table {smoke['table']}: {smoke['rows_total']} rows, versions {smoke['versions']}")
    print("\nWhere to look:")
    print(f"  Airflow UI   make up, then {af.base_url} (user admin; password printed by make up)")
    print("  MLflow UI    make up, then http://127.0.0.1:5000")
    print(f"  Lakehouse    {PROJECT_ROOT / '.local' / 'lakehouse'}")
    print(f"  Task logs    {af.home / 'logs'}")
    print(f"\nTotal time: {time.monotonic() - START:.0f}s; result: {'OK' if summary.get('ok') else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
