"""DriftReportOperator: the drift job (mlops_core.jobs.drift) through SparkJobOperator, plus what the UI and
the DAG need around it:

* MLflow reached through MlflowHook: a connection that overrides the environment config is handed to the job;
* extra links "Drift report" (the HTML in the reports store), "Live traffic drift report", "Evidently dashboard"
  (the use case's drift history in the Evidently UI) and "MLflow run" (the run holding the reports);
* a date without predictions (job status "no_data") skips the task, so no empty asset event is emitted;
* a report on another date than the run asked for (the run's date had no predictions: the job fell back to the
  newest scored date before it) says so: a warning in the log, the XCom `date_fallback` ({asked, reported,
  reason}) and `fallback` in the result, which the DAG's `on_asked_date` task turns into a skipped task in the
  grid."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from mlops_airflow.links import DriftReportLink, EvidentlyDashboardLink, LiveDriftReportLink, MlflowRunLink
from mlops_airflow.operators.spark_job import SparkJobOperator, run_date

FALLBACK_KEY = "date_fallback"


class DriftReportOperator(SparkJobOperator):
    ui_color = "#e8d5f5"

    def __init__(self, *, mlflow_conn_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("job", "drift")
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.links: dict[str, str] = {}

    @property
    def operator_extra_links(self):
        return (*super().operator_extra_links, DriftReportLink(), LiveDriftReportLink(), EvidentlyDashboardLink(),
                MlflowRunLink())

    def _hook(self):
        from mlops_airflow.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id, self.env_name)

    def execute(self, context) -> dict[str, Any]:
        try:
            overrides = self._hook().overrides()
        except Exception as exc:  # noqa: BLE001 - the job falls back to the environment config
            self.log.warning("MLflow connection not resolved (%s): the job uses the environment config", exc)
            overrides = {}
        self.job_params = {**overrides, **(self.job_params or {})}
        return self._finish(context, super().execute(context))

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        return self._finish(context, super().execute_complete(context, event))

    def asked_date(self, context) -> str:
        """The as-of date this run asked for: the `date` job param, else the run's date."""
        asked = str((self.job_params or {}).get("date") or "").strip()
        return asked[:10] if asked else run_date(context)

    def _finish(self, context, result: dict[str, Any]) -> dict[str, Any]:
        if result.get("status") == "no_data":
            raise AirflowSkipException(f"no drift report: {result.get('reason')}")
        asked, reported = self.asked_date(context), str(result.get("date") or "")[:10]
        if reported and reported != asked:  # (no `fallback` key when the report is on the asked date)
            result["fallback"] = {"asked": asked, "reported": reported,
                                  "reason": f"no scored predictions for {asked}: reported {reported}, the newest "
                                            f"scored date before it"}
            self.log.warning("DATE FALLBACK: %s", result["fallback"]["reason"])
            context["ti"].xcom_push(key=FALLBACK_KEY, value=result["fallback"])
        if result.get("report_url"):
            self.links[DriftReportLink.name] = result["report_url"]
        if (result.get("live_traffic") or {}).get("report_url"):
            self.links[LiveDriftReportLink.name] = result["live_traffic"]["report_url"]
        if (result.get("evidently") or {}).get("dashboard_url"):
            self.links[EvidentlyDashboardLink.name] = result["evidently"]["dashboard_url"]
        if result.get("mlflow_run_id") and result.get("mlflow_experiment_id"):
            try:
                url = self._hook().run_url(result["mlflow_experiment_id"], result["mlflow_run_id"])
                self.links[MlflowRunLink.name] = url
                result["mlflow_run_url"] = url
            except Exception as exc:  # noqa: BLE001 - a missing link must not fail a finished report
                self.log.warning("no MLflow run link: %s", exc)
        self.log.info("drift report: %s", self.links.get(DriftReportLink.name))
        return result
