"""Operator extra links of the project (buttons on a task in the Airflow UI).

In Airflow 3 the worker evaluates `get_link` when the task finishes and stores the URL in XCom; the UI reads it
from there. The links here read what the operator recorded on itself during execute (`self.links[name]`), so
they need no XCom round trip and no plugin registration."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink


class RecordedLink(BaseOperatorLink):
    """A link whose URL the operator stored in `operator.links[<name>]` while it ran ('' when absent)."""

    name = "link"

    def get_link(self, operator, *, ti_key) -> str:
        return str((getattr(operator, "links", None) or {}).get(self.name) or "")


class DriftReportLink(RecordedLink):
    name = "Drift report"


class LiveDriftReportLink(RecordedLink):
    """The night's drift report on live traffic (what the serving endpoint saw), when there was traffic."""

    name = "Live traffic drift report"


class EvidentlyDashboardLink(RecordedLink):
    """The use case's project dashboard in the Evidently UI: the drift history, night by night."""

    name = "Evidently dashboard"


class MlflowRunLink(RecordedLink):
    name = "MLflow run"
