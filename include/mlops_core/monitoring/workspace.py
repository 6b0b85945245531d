"""Drift history in the Evidently UI: every nightly report is also added, as a run, to the use case's project of
an Evidently workspace (env.evidently.workspace), dated by the night it covers; the project's dashboard plots
the history.

* one project per use case, named after it, for the batch-scored reports (created on its first night with its
  dashboard), and "<use case> live traffic" for the reports on what the serving endpoint saw: Evidently 0.7's
  local storage matches a run to the FIRST panel series with the same metric and labels before looking at
  tags, so a batch and a live series of the same metric cannot share one dashboard;
* one run per night in each project: the drift snapshot, merged with the night's performance snapshot when
  labels arrived (batch), its timestamp
  set to the night (midnight UTC), tagged with the current data, with metadata (night, model version, report
  URI). Its id is derived from (project, night, current data), so rerunning or backfilling a night REPLACES
  that night's run: never a duplicate;
* the dashboard (Evidently 0.7 panels, `evidently.sdk.panels`): dataset drift share, drifted columns count,
  prediction drift (the ValueDrift of the model output), and (batch) the performance metrics over time.

The UI (`evidently ui --workspace <path>`) reads the same folder and watches it (a run added while it runs
shows up without a restart); `make up` and compose serve it on 127.0.0.1:$EVIDENTLY_PORT."""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_core.config import EnvironmentConfig

log = logging.getLogger("mlops.monitoring.workspace")

TAB = "Drift history"
NIGHT_KEY = "night"
CURRENT_DATA_KEY = "current_data"
# performance metrics plotted over time, by model task (the ClassificationPreset / RegressionPreset results)
PERFORMANCE = {"binary": ("RocAuc", "LogLoss", "Accuracy", "F1Score"), "regression": ("RMSE", "MAE", "R2Score")}
_NAMESPACE = uuid.UUID("5d0c3a52-64a4-4c55-9b43-8a0f1f0f7e21")  # run ids: uuid5 of (project, night, kind)


def open_workspace(path: str):
    from evidently.ui.workspace import Workspace

    return Workspace.create(path)


def run_id(project_id: Any, night: date, current_data: str) -> uuid.UUID:
    """The run of (project, night, current data): the same id on every rerun of the night."""
    return uuid.uuid5(_NAMESPACE, f"{project_id}/{night.isoformat()}/{current_data}")


def project_name(use_case: str, current_data: str) -> str:
    return use_case if current_data == "batch_scored" else f"{use_case} live traffic"


def _panels(output_column: str, task: str, current_data: str = "batch_scored") -> list:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    legend = "batch scored" if current_data == "batch_scored" else "live traffic"

    def both(metric: str, labels: dict[str, str]) -> list[PanelMetric]:
        return [PanelMetric(legend=legend, metric=metric, metric_labels=labels, tags=[current_data])]

    perf_labels = {"RMSE": {"value_type": "mean"}, "MAE": {"value_type": "mean"}}
    panels = [
        line_plot_panel("Dataset drift share", both("DriftedColumnsCount", {"value_type": "share"}),
                        description="Share of drifted columns per night (the dataset drifts at the configured "
                                    "drift_share)", size="half"),
        bar_plot_panel("Drifted columns", both("DriftedColumnsCount", {"value_type": "count"}),
                       description="Number of drifted feature columns per night", size="half"),
        line_plot_panel(f"Prediction drift ({output_column})", both("ValueDrift", {"column": output_column}),
                        description="Drift score of the model output against the reference", size="half"),
    ]
    if current_data != "batch_scored":
        return panels
    return [*panels,
        line_plot_panel("Performance (labelled predictions)",
                        [PanelMetric(legend=m, metric=m, metric_labels=perf_labels.get(m, {}), tags=["batch_scored"])
                         for m in PERFORMANCE.get(task, PERFORMANCE["binary"])],
                        description="On the predictions whose labels had arrived by the night", size="half"),
    ]


def ensure_project(ws, use_case: str, output_column: str = "score", task: str = "binary",
                   current_data: str = "batch_scored"):
    """The use case's project of `current_data`, created with its dashboard on first use (a project without
    the panels, e.g. created by hand, gets them)."""
    name = project_name(use_case, current_data)
    found = ws.search_project(name)
    what = "the batch-scored snapshot" if current_data == "batch_scored" else "the serving endpoint's traffic"
    project = found[0] if found else ws.create_project(
        name, description=f"Nightly drift reports of the {use_case} use case on {what} (mlops drift_report DAG)")
    have = {p.title for p in ws.get_dashboard(project.id).panels}
    for panel in _panels(output_column, task, current_data):
        if panel.title not in have:
            project.dashboard.add_panel(panel, tab=TAB)
    return project


def _merged(snapshots: list, night: date, name: str, tags: list[str], metadata: dict[str, Any]):
    """One SnapshotModel of the night: the drift snapshot + the others' results and widgets, dated `night`."""
    model = snapshots[0].to_snapshot_model()
    for other in snapshots[1:]:
        extra = other.to_snapshot_model()
        model.metric_results.update(extra.metric_results)
        model.top_level_metrics.extend(extra.top_level_metrics)
        model.widgets.extend(extra.widgets)
        model.tests_widgets.extend(extra.tests_widgets)
    model.timestamp = datetime(night.year, night.month, night.day)
    model.name, model.tags = name, tags
    model.metadata = {k: str(v) for k, v in metadata.items() if v is not None}
    return model


def add_night(path: str, use_case: str, night: date, current_data: str, snapshots: list,
              metadata: dict[str, Any] | None = None, *, output_column: str = "score",
              task: str = "binary") -> dict[str, str]:
    """Add (or replace) the night's run of `current_data` in the use case's project; returns its ids."""
    ws = open_workspace(path)
    project = ensure_project(ws, use_case, output_column, task, current_data)
    rid = run_id(project.id, night, current_data)
    model = _merged(snapshots, night, f"{use_case} {night.isoformat()} {current_data}", [current_data, "nightly"],
                    {NIGHT_KEY: night.isoformat(), CURRENT_DATA_KEY: current_data, **(metadata or {})})
    # written under its derived id: a rerun of the night overwrites the same file (Workspace.add_run would
    # give every call a new id, i.e. a duplicate run per rerun)
    ws.state.write_snapshot(project.id, rid, model)
    log.info("evidently workspace %s: project %s, run %s (%s %s)", path, project.id, rid, night, current_data)
    return {"project_id": str(project.id), "run_id": str(rid)}


def project_url(ui_url: str, project_id: str) -> str:
    return f"{ui_url.rstrip('/')}/projects/{project_id}"


def find_project_id(path: str, use_case: str) -> str | None:
    """The use case's project id in the workspace at `path`, without creating anything."""
    ws = open_workspace(path)
    found = ws.search_project(use_case)
    return str(found[0].id) if found else None


def record_nightly(env: EnvironmentConfig, use_case, result, stored: dict[str, str]) -> dict[str, Any]:
    """Add the night's reports (a drift.DriftResult and its live report) to the workspace: the job's hook.
    Returns {project_id, runs: {current_data: run id}, dashboard_url} or {"skipped": why}."""
    from mlops_core.monitoring.spec import output_column

    settings = env.evidently
    if not settings.enabled:
        return {"skipped": "evidently.enabled is false"}
    night = date.fromisoformat(result.date)
    task = getattr(getattr(use_case, "model", None), "task", "binary")
    out_col = output_column(use_case)
    runs, projects = {}, {}
    for res, report in ((result, "report.html"), (result.live, "live_report.html")):
        if res is None or "drift" not in res.snapshots:
            continue
        snaps = [res.snapshots["drift"], *([res.snapshots["performance"]] if "performance" in res.snapshots else [])]
        ids = add_night(settings.workspace, use_case.name, night, res.current_data, snaps,
                        {"model_name": res.model_name, "model_version": res.model_version,
                         "drift_share": round(res.drift_share, 4), "report_uri": stored.get(report)},
                        output_column=out_col, task=task)
        runs[res.current_data], projects[res.current_data] = ids["run_id"], ids["project_id"]
    batch, live = projects.get("batch_scored"), projects.get("live_traffic")
    return {"workspace": settings.workspace, "project_id": batch, "projects": projects, "runs": runs,
            "dashboard_url": project_url(settings.ui_url, batch) if batch else None,
            "live_dashboard_url": project_url(settings.ui_url, live) if live else None}
