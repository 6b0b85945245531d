"""`make demo`: the pipeline on the local stack, through the real Airflow scheduler.

1. generate the churn data set (with drift injected in the last weeks) into the landing zone;
2. start Airflow on 127.0.0.1 (unless `make up` already runs it);
3. trigger DAGs over the REST API exactly as the UI does, one after another (each night's drift report next
   to the next night's scoring), showing progress;
4. print a summary and where to look; 5. stop what it started.

Every run is triggered by the demo itself, so the Airflow it starts has cron and asset scheduling switched
off (`[scheduler] use_job_schedule = False`): otherwise unpausing `ingest_raw` also starts a scheduled run for
yesterday that waits for files and holds the backfill (max_active_runs=1). `make up` keeps scheduling on.
`--smoke` runs only the Spark + Delta smoke DAG (about a minute).

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
DEMO_HPO_TRIALS = 8


def say(message: str) -> None:
    elapsed = time.monotonic() - START
    print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}", flush=True)


@dataclass
class Step:
    dag_id: str
    conf: dict[str, Any]
    why: str
    results: dict[str, Any] = field(default_factory=dict)
    # Consecutive steps with the same wave run at the same time (the nights' drift report next to the next
    # night's scoring, as their schedules let them in production); each wave waits for the one before.
    wave: int = 0


def run_wave(client: AirflowClient, steps: list[Step], timeout: float) -> list[dict[str, Any]]:
    """Trigger the steps' DAG runs together and follow them to the end, printing each task's state changes."""
    started = []
    for step in steps:
        client.wait_for_dag(step.dag_id, timeout=180)
        client.set_paused(step.dag_id, False)
        say(f"{step.dag_id}: {step.why}")
        started.append((step, client.trigger(step.dag_id, step.conf), time.monotonic()))
    deadline = time.monotonic() + timeout
    seen: dict[tuple[str, str], str] = {}
    finished: dict[str, dict[str, Any]] = {}
    while len(finished) < len(started):
        for step, run_id, t0 in started:
            if run_id in finished:
                continue
            run = client.dag_run(step.dag_id, run_id)
            for ti in client.task_instances(step.dag_id, run_id):
                state = ti.get("state") or "queued"
                if seen.get((run_id, ti["task_id"])) != state and state in (
                        "running", "success", "failed", "skipped", "up_for_retry", "deferred"):
                    seen[(run_id, ti["task_id"])] = state
                    say(f"  {step.dag_id}.{ti['task_id']}: {state}")
            if run["state"] in ("success", "failed"):
                say(f"{step.dag_id}: {run['state']} in {time.monotonic() - t0:.0f}s")
                run["task_instances"] = client.task_instances(step.dag_id, run_id)
                finished[run_id] = run
        if len(finished) < len(started):
            if time.monotonic() > deadline:
                late = [step.dag_id for step, run_id, _ in started if run_id not in finished]
                raise TimeoutError(f"{', '.join(late)} did not finish in {timeout:.0f}s")
            time.sleep(2)
    return [finished[run_id] for _, run_id, _ in started]


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
    parser.add_argument("--spark-port", type=int, default=int(os.environ.get("SPARK_CONNECT_PORT", "15002")),
                        help="port of the shared Spark Connect server the jobs use (0: each job starts its own Spark)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per DAG run")
    parser.add_argument("--smoke", action="store_true",
                        help="only the Spark + Delta smoke DAG instead of the whole loop")
    args = parser.parse_args(argv)
    start = dt.date.fromisoformat(args.start)
    end = start + dt.timedelta(days=args.days - 1)
    args.drift_from = (end - dt.timedelta(days=20)).isoformat()

    generate_data(args)
    home = Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".local" / "airflow")).resolve()
    # The demo triggers every run itself: no cron or asset-triggered runs racing its backfills.
    af = LocalAirflow(home=home, port=args.port, mlflow_port=None, spark_port=args.spark_port or None,
                      extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                                 # the drift-triggered retrain takes the use case's trials: fewer for a demo
                                 "MLOPS_USE_CASE__MODEL__HPO__TRIALS": str(DEMO_HPO_TRIALS)})
    started_here = af.pid("scheduler") is None
    if not started_here:
        say("using the Airflow that `make up` runs: its schedules are on, so scheduled runs may queue "
            "behind the demo's (make down first for a clean demo)")
    if started_here:
        spark = af.shared_spark_env()
        say("starting Airflow on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer"
            + (f", and the Spark Connect server every job shares on port {af.spark_port})" if spark else ")"))
        af.write_config()
        af.start()
    try:
        af.wait_until_healthy(timeout=240)
        client = af.client()
        drift_from = dt.date.fromisoformat(args.drift_from)
        steps = None if not args.smoke else [
            Step("platform_smoke", {"rows": 1000}, "Spark + Delta round trip through the Spark job operator")
        ]
        summary = run_chain(client, start, end, drift_from, args.timeout, steps=steps)
    finally:
        if started_here:
            say("stopping the Airflow processes this demo started")
            af.stop(timeout=10)  # every run has finished: no 30 s wait for a graceful executor shutdown
    print_summary(summary, af)
    return 0 if summary.get("ok") else 1


def chain_steps(start: dt.date, end: dt.date, drift_from: dt.date, scored_days: int = 5,
                hpo_trials: int = DEMO_HPO_TRIALS, rule: dict[str, Any] | None = None) -> list[Step]:
    """The loop, one DAG run after another (but for the nights: see Step.wave), each with the Params a person
    would type in the UI."""
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
    # Night i's drift report runs next to night i+1's scoring: it only needs night i's predictions.
    for i, day in enumerate(last_days):
        steps.append(Step("batch_score", {"as_of_date": day.isoformat()}, f"score the {day} snapshot with the champion",
                          wave=3 + i))
        steps.append(Step("drift_report", {"date": day.isoformat()}, f"Evidently drift report for {day}", wave=4 + i))
    steps.append(Step("retrain_on_drift", {"expected_date": end.isoformat(), "wait_minutes": 0, **(rule or {})},
                      "does the drift history call for a retrain? (k of the last n nights drifted)",
                      wave=4 + len(last_days)))
    for i, step in enumerate(steps[:3]):
        step.wave = i
    return steps


def waves(steps: list[Step]) -> list[list[Step]]:
    """Consecutive steps of the same wave, in order."""
    grouped: list[list[Step]] = []
    for step in steps:
        if grouped and grouped[-1][0].wave == step.wave:
            grouped[-1].append(step)
        else:
            grouped.append([step])
    return grouped


def run_chain(client: AirflowClient, start: dt.date, end: dt.date, drift_from: dt.date, timeout: float,
              steps: list[Step] | None = None) -> dict[str, Any]:
    """Run the steps wave by wave; stop after the first wave with a failed run. Returns what the summary prints."""
    summary: dict[str, Any] = {"runs": [], "ok": True}
    for wave in waves(steps or chain_steps(start, end, drift_from)):
        runs = run_wave(client, wave, timeout)
        for step in wave:
            client.set_paused(step.dag_id, True)  # no cron runs of demo DAGs behind the user's back
        for step, run in zip(wave, runs, strict=True):
            states = {t["task_id"]: t["state"] for t in run["task_instances"]}
            summary["runs"].append({"dag_id": step.dag_id, "state": run["state"], "tasks": states,
                                    "run_id": run["dag_run_id"], "conf": step.conf})
            if run["state"] != "success":
                summary["ok"] = False
                continue
            if step.dag_id == "platform_smoke":
                summary["smoke"] = client.xcom("platform_smoke", run["dag_run_id"], "delta_round_trip")
            collect(client, step.dag_id, run, summary)
        if not summary["ok"]:
            break
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
        result = _xcom(client, dag_id, run, "score") or {}  # the score job's result (mlops_core.jobs.score)
        summary["scored_rows"] = summary.get("scored_rows", 0) + int(result.get("rows_total", 0) or 0)
        summary["champion"] = (result.get("model") or {}).get("version", summary.get("champion"))
    elif dag_id == "drift_report":
        summary.setdefault("drift", []).append(_xcom(client, dag_id, run, "report"))
    elif dag_id == "retrain_on_drift":
        summary["retrain_triggered"] = any(t["task_id"] == "trigger_retrain" and t["state"] == "success"
                                           for t in run["task_instances"])
        summary["drift_decision"] = _xcom(client, dag_id, run, "wait_for_drift")


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


def _metrics(metrics: dict[str, Any] | None) -> str:
    shown = {k: v for k, v in (metrics or {}).items() if k in ("roc_auc", "pr_auc", "log_loss", "f1")}
    return ", ".join(f"{k} {v:.3f}" for k, v in shown.items() if isinstance(v, int | float)) or "n/a"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the loop produced, in the words of its results (XComs)."""
    lines = []
    ingest = summary.get("ingest")
    if ingest:
        lines.append(f"ingest: {ingest['read']} rows read, {ingest['good']} into bronze, "
                     f"{ingest['quarantined']} quarantined with a reason (bronze.quarantine)")
    features = summary.get("features") or {}
    if features:
        snaps = features.get("snapshots", [])
        lines.append(f"features: {len(snaps)} daily snapshots, {sum(x['rows'] for x in snaps)} rows, "
                     f"{len(features.get('feature_columns', []))} features, table version "
                     f"{features.get('feature_table_version')}")
    for gate in filter(None, summary.get("gates", [])):
        lines.append(f"gate: {gate.get('model_name')} v{gate.get('version')} {gate.get('decision')} "
                     f"(champion before: {gate.get('champion_before') or 'none'}, after: {gate.get('champion_after')}); "
                     f"challenger {_metrics(gate.get('challenger_metrics'))}; {gate.get('reason')}")
    if "scored_rows" in summary:
        lines.append(f"batch scoring: {summary['scored_rows']} rows scored with champion v{summary.get('champion')}")
    for night in filter(None, summary.get("drift", [])):
        if night.get("status") != "ok":
            lines.append(f"drift {night.get('date')}: {night.get('status')} ({night.get('reason')})")
            continue
        lines.append(f"drift {night['date']}: share {night['drift_share']:.2f} (threshold "
                     f"{night['drift_share_threshold']}), drifted: {', '.join(night['drifted_features']) or 'none'}; "
                     f"report {night.get('report_url')}")
    decision = summary.get("drift_decision") or {}
    if "retrain_triggered" in summary:
        why = decision.get("reason") or decision.get("status") or "rule did not hold"
        lines.append(f"retrain on drift: {'fired' if summary['retrain_triggered'] else 'not fired'} ({why})")
    retrain = summary.get("drift_retrain")
    if retrain:
        lines.append(f"drift-triggered retrain_model run: {retrain['state']}")
    return lines


def _lakehouse_root() -> str:
    """Where the jobs wrote their Delta tables: the environment's lakehouse (MLOPS_DATA_DIR moves it)."""
    from mlops_core.config import load_environment

    return load_environment().storage.lakehouse_root


def print_summary(summary: dict[str, Any], af: LocalAirflow) -> None:
    print("\n" + "=" * 78)
    print("Demo summary")
    print("=" * 78)
    for run in summary["runs"]:
        print(f"  {run['dag_id']:22s} {run['state']:8s} tasks: {json.dumps(run['tasks'])}")
    smoke = summary.get("smoke")
    if smoke:
        print(f"\n  Delta table {smoke['table']}: {smoke['rows_total']} rows, versions {smoke['versions']}")
    for line in summary_lines(summary):
        print("  " + line)
    print("\nWhere to look:")
    print(f"  Airflow UI   make up, then {af.base_url} (user admin; password printed by make up)")
    print("  MLflow UI    make up, then http://127.0.0.1:5000")
    print(f"  Lakehouse    {_lakehouse_root()}")
    print(f"  Task logs    {af.home / 'logs'}")
    print(f"\nTotal time: {time.monotonic() - START:.0f}s; result: {'OK' if summary.get('ok') else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
