"""`mlops` command line (also `python -m mlops_core.cli`): small operational commands."""

from __future__ import annotations

import argparse
import os
import sys


def _init_mlflow(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from mlops_core.config import load_environment
    from mlops_core.tracking import configure_mlflow

    env = load_environment(args.env)
    uri = configure_mlflow(env)
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    MlflowClient().search_experiments(max_results=1)  # creates and migrates the store
    print(f"MLflow store ready: {uri}")
    return 0


def _databricks_plan(args: argparse.Namespace) -> int:
    """Print every request the Databricks tasks of a use case would send (nothing is sent).

    Which tasks run on Databricks is written in the DAG files, which only Airflow parses, and the core library
    never imports Airflow or the plugins. So this command hands over, across a process boundary, to the
    plugins' planner (mlops_airflow.databricks_plan), which parses the DAGs and builds each request with this
    library's mlops_core.databricks.payload and checks it with mlops_core.databricks.sdk."""
    import subprocess

    from mlops_core.config.loader import project_root

    root = project_root()
    path = [str(root / "plugins"), str(root / "dags"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    cmd = [sys.executable, "-m", "mlops_airflow.databricks_plan", "--use-case", args.use_case]
    if args.env:
        cmd += ["--env", args.env]
    if args.date:
        cmd += ["--date", args.date]
    return subprocess.call(cmd, env=env)


# ---- use cases ---------------------------------------------------------------------------------------------
# The sections a stage's DAG needs: without them the DAG file's build() makes no DAG for the use case
# (dags/<stage>.py). Stages not listed here get a DAG for every enabled use case.
DATE_PLACEHOLDER = "<YYYY-MM-DD>"


def _locate(target: str):
    """(name, None) for a use case under include/config/use_cases/, (None, path) for a file path."""
    from pathlib import Path

    if target.endswith((".yaml", ".yml")) or "/" in target or os.sep in target:
        return None, Path(target).expanduser().absolute()
    return target, None


def _load_checked(target: str, env_name: str | None):
    """The use case (as loaded, and as it runs in the environment), its file and the environment, checked the
    way the DAGs load it. Raises ConfigError."""
    from mlops_core.config import ConfigError, load_environment, load_use_case
    from mlops_core.config.use_case import use_case_file

    name, path = _locate(target)
    file = path if path is not None else use_case_file(name)
    cfg = load_use_case(name=name, path=path)
    if path is not None and cfg.name != path.stem:
        # load_use_case checks this for a name; the DAGs find a use case by its file's name.
        raise ConfigError(f"{path}: name: {cfg.name!r} must be the file's name {path.stem!r} (the DAG ids, tables "
                          f"and models are named after it); allowed values: {path.stem!r}, or rename the file "
                          f"to {cfg.name}.yaml")
    env = load_environment(env_name)
    return cfg, cfg.for_environment(env), file, env


def _table_usage(cfg) -> list[tuple]:
    """(table, stages that write it, stages that read it) of every lakehouse table of the use case. The table
    names come from the stages' own modules; which DAG writes and reads what is documented in their jobs."""
    from mlops_core import tables
    from mlops_core.features.materialize import entity_state
    from mlops_core.ingest.pipeline import INGEST_LOG
    from mlops_core.jobs.smoke import SMOKE_TABLE
    from mlops_core.monitoring.retrain_log import RETRAIN_TRIGGERS

    model, features, monitoring = cfg.model is not None, cfg.features is not None, cfg.monitoring is not None
    feature_sources = cfg.features.sources() if features else []
    label_source = cfg.model.label.source if model else None
    rows = []
    for source in cfg.sources:
        readers = [stage for stage, reads in (("materialize_features", source in feature_sources),
                                              ("retrain_model", source == label_source),
                                              ("drift_report", source == label_source)) if reads]
        rows.append((tables.bronze(source), ["ingest_raw"], readers))
    if cfg.ingested_sources():
        rows.append((tables.QUARANTINE, ["ingest_raw"], []))
        rows.append((INGEST_LOG, ["ingest_raw"], ["ingest_raw"]))
    if features:
        entity = cfg.entity.name
        readers = ["retrain_model", "batch_score", "drift_report"] if model else []
        rows.append((tables.features(entity), ["materialize_features"], readers))
        rows.append((tables.latest_features(entity), ["materialize_features"], []))
        rows.append((entity_state(entity), ["materialize_features"], ["materialize_features"]))
    if model and features:
        rows.append((tables.PREDICTIONS, ["batch_score"], ["drift_report"]))
        if cfg.scoring.shadow_alias:
            rows.append((tables.SHADOW_PREDICTIONS, ["batch_score"], []))
    if model:
        rows.append((tables.PROMOTION_HISTORY, ["retrain_model", "rollback_model", "approve_model"], []))
        rows.append((tables.DRIFT_METRICS, ["drift_report"], ["retrain_on_drift"] if monitoring else []))
    if model and monitoring:
        rows.append((RETRAIN_TRIGGERS, ["retrain_on_drift"], ["retrain_on_drift"]))
    rows.append((SMOKE_TABLE, ["platform_smoke"], ["platform_smoke"]))
    return rows


def _use_case_report(target: str, env_name: str | None) -> dict:
    """Everything `use-case validate` prints, as data. Raises ConfigError."""
    from mlops_core.config.use_case import USE_CASE_OVERRIDE_PREFIX
    from mlops_core.jobs.contract import STAGES, dag_id
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.store import ReportStore
    from mlops_core.tracking import experiment_name

    cfg, running, file, env = _load_checked(target, env_name)
    owners = cfg.bronze_owners()
    lake = Lakehouse(env, cfg.name, owners)
    dags = []
    for stage in STAGES:
        missing = cfg.missing_for(stage)
        dags.append({"stage": stage, "dag_id": dag_id(cfg.name, stage),
                     "created": cfg.enabled and not missing,
                     "why_not": "enabled: false" if not cfg.enabled
                     else ("every source is another use case's" if missing == ["sources"] and stage == "ingest_raw"
                           else f"no `{'`, `'.join(missing)}` section" if missing else None)})
    table_rows = [{
        "table": str(table),
        # Unity Catalog: <catalog>.<use case>_<layer>.<table>; else the Delta table's folder.
        "location": lake.identifier(table).replace("`", "") if lake.catalog else lake.path(table),
        "owner": lake.owner(table),
        # a shared source's bronze table is written by its owner's DAG
        "written_by": [dag_id(lake.owner(table), s) for s in writers],
        "read_by": [dag_id(cfg.name, s) for s in readers],
    } for table, writers, readers in _table_usage(cfg)]
    return {
        "valid": True,
        "file": str(file),
        "use_case": cfg.name,
        "enabled": cfg.enabled,
        "environment": env.name,
        "config_hash": cfg.config_hash,
        "overrides": {k: v for k, v in sorted(os.environ.items()) if k.startswith(USE_CASE_OVERRIDE_PREFIX)},
        "dag_tag": f"use_case:{cfg.name}",
        "dags": dags,
        "landing": {name: spec.folder(env.storage.landing_root, DATE_PLACEHOLDER) + "/"
                    for name, spec in cfg.ingested_sources().items()},
        "shared_sources": owners,
        "tables": table_rows,
        "registered_model_name": running.model.registered_model_name if running.model else None,
        "experiment": experiment_name(env, cfg.name),
        "reports": ReportStore(env.storage.reports_root, cfg.name).uri(DATE_PLACEHOLDER, ""),
        "config": running.model_dump(mode="json"),
    }


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _print_report(report: dict, summary_only: bool) -> None:
    import yaml

    if not summary_only:
        print(f"# resolved config of {report['use_case']} in environment {report['environment']} "
              "(after ${VAR} expansion and MLOPS_USE_CASE__... overrides; unset keys left out, --json has all)")
        config = _without_nulls(report["config"])
        print(yaml.safe_dump(config, sort_keys=False, width=110, default_flow_style=None).rstrip())
        print()
    print(f"file:         {report['file']}")
    state = "enabled" if report["enabled"] else "disabled (enabled: false: no DAGs)"
    print(f"use case:     {report['use_case']} ({state}), config hash {report['config_hash']}")
    print(f"environment:  {report['environment']}")
    for key, value in report["overrides"].items():
        print(f"override:     {key}={value}")
    print(f"\nDAGs (tag {report['dag_tag']}):")
    width = max(len(d["dag_id"]) for d in report["dags"])
    for d in report["dags"]:
        print((f"  {d['dag_id']:<{width}}" + ("" if d["created"] else f"  (no DAG: {d['why_not']})")).rstrip())
    print(f"\nlanding files read by ingest_raw (one folder per logical date {DATE_PLACEHOLDER}):")
    width = max([len(name) for name in [*report["landing"], *report["shared_sources"]]] or [0])
    for name, folder in report["landing"].items():
        print(f"  {name:<{width}}  {folder}")
    for name, owner in report["shared_sources"].items():
        print(f"  {name:<{width}}  (not ingested here: read from use case {owner}'s bronze.{name})")
    print("\ntables (written by -> read by):")
    width = max(len(t["table"]) for t in report["tables"])
    for t in report["tables"]:
        # this use case's DAGs by stage, another use case's by full id
        short = lambda ids: ", ".join(  # noqa: E731
            i.split("__", 1)[1] if i.startswith(report["use_case"] + "__") else i for i in ids) or "-"
        print(f"  {t['table']:<{width}}  {t['location']}\n  {'':<{width}}    {short(t['written_by'])} -> "
              f"{short(t['read_by'])}")
    print(f"\nmodel:        {report['registered_model_name'] or '(no model section)'}"
          + ("  (aliases champion, challenger, previous_champion)" if report["registered_model_name"] else ""))
    print(f"experiment:   {report['experiment']}")
    print(f"reports:      {report['reports']}")
    print(f"\nOK: {report['file']} is a valid use case for environment {report['environment']}")


def _use_case_validate(args: argparse.Namespace) -> int:
    import json

    from mlops_core.config import ConfigError
    from mlops_core.jobs.contract import ExitCode

    try:
        report = _use_case_report(args.target, args.use_case_env or args.env)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"valid": False, "target": args.target, "error": str(exc)}, indent=2))
        else:
            print(f"INVALID: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, args.summary)
    return ExitCode.OK


def _use_case_list(args: argparse.Namespace) -> int:
    """Every YAML under include/config/use_cases/ (or MLOPS_CONFIG_DIR): enabled, disabled or error, checked
    as the DAGs load them (including the environment's model-name rules). Exit 2 when any file has an error."""
    import json

    from mlops_core.config import ConfigError, config_dir, load_environment, load_use_cases
    from mlops_core.config.use_case import USE_CASES_ENV, use_case_file
    from mlops_core.jobs.contract import ExitCode

    try:
        env = load_environment(args.use_case_env or args.env)
    except ConfigError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    catalog = load_use_cases("")  # every file; MLOPS_USE_CASES is shown, not applied
    selected = [n.strip() for n in os.environ.get(USE_CASES_ENV, "").split(",") if n.strip()]
    rows = []
    for cfg in catalog.enabled:
        try:
            cfg.for_environment(env)
            rows.append({"use_case": cfg.name, "status": "enabled", "file": str(use_case_file(cfg.name))})
        except ConfigError as exc:
            rows.append({"use_case": cfg.name, "status": "error", "file": str(use_case_file(cfg.name)),
                         "error": str(exc)})
    rows += [{"use_case": n, "status": "disabled", "file": str(use_case_file(n))} for n in catalog.disabled]
    for file, error in catalog.errors.items():
        from pathlib import Path

        rows.append({"use_case": Path(file).stem, "status": "error", "file": file, "error": error})
    known = {r["use_case"] for r in rows}
    rows += [{"use_case": n, "status": "error", "file": str(use_case_file(n)),
              "error": f"{USE_CASES_ENV} names {n!r}, which has no file"} for n in selected if n not in known]
    for row in rows:
        row["runs_here"] = row["status"] == "enabled" and (not selected or row["use_case"] in selected)
    rows.sort(key=lambda r: r["use_case"])
    failed = any(r["status"] == "error" for r in rows)
    if args.json:
        print(json.dumps({"folder": str(config_dir() / "use_cases"), "environment": env.name,
                          USE_CASES_ENV: selected or None, "use_cases": rows}, indent=2))
        return ExitCode.REFUSED if failed else ExitCode.OK
    print(f"use cases in {config_dir() / 'use_cases'} (environment {env.name}"
          + (f", {USE_CASES_ENV}={','.join(selected)}" if selected else "") + "):")
    width = max([len(r["use_case"]) for r in rows] or [0])
    for row in rows:
        note = "" if row["runs_here"] or row["status"] != "enabled" else f"  (not in {USE_CASES_ENV}: no DAGs here)"
        print(f"  {row['use_case']:<{width}}  {row['status']:<8}  {row['file']}{note}")
        if row.get("error"):
            print("\n".join("      " + line for line in row["error"].splitlines()))
    if not rows:
        print("  (none)")
    return ExitCode.REFUSED if failed else ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--env", default=None, help="environment name (default $MLOPS_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-mlflow", help="create and migrate the MLflow store of the environment")
    plan = sub.add_parser("databricks-plan", help="print the Databricks requests of every DAG task of a use case, "
                          "checked by databricks-sdk (needs the Airflow install; sends nothing)")
    plan.add_argument("--use-case", required=True)
    plan.add_argument("--date", default=None, help="logical date of the planned runs (default today, UTC)")
    use_case = sub.add_parser("use-case", help="check use-case YAMLs without running anything")
    use_case_sub = use_case.add_subparsers(dest="use_case_command", required=True)
    validate = use_case_sub.add_parser(
        "validate", help="load and validate one use case; print its resolved config, DAG ids, tables (physical "
        "names in the environment), model name and report folder; exit 2 when the YAML is invalid")
    validate.add_argument("target", help="a use case name (include/config/use_cases/<name>.yaml) or a YAML path")
    validate.add_argument("--summary", action="store_true", help="leave out the resolved config")
    listing = use_case_sub.add_parser(
        "list", help="every use-case YAML: enabled, disabled or error (exit 2 when one has an error)")
    for cmd in (validate, listing):
        cmd.add_argument("--env", dest="use_case_env", default=None,
                         help="environment name (default $MLOPS_ENV or local)")
        cmd.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.command == "databricks-plan" and args.env is None:
        args.env = os.environ.get("MLOPS_ENV") if os.environ.get("MLOPS_ENV", "local") != "local" else "databricks"
    if args.command == "use-case":
        try:
            return {"validate": _use_case_validate, "list": _use_case_list}[args.use_case_command](args)
        except BrokenPipeError:  # `mlops use-case validate churn | head`: the reader has seen enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    handlers = {"init-mlflow": _init_mlflow, "databricks-plan": _databricks_plan}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
