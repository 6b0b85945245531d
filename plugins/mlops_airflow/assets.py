"""Assets of the lakehouse tables, named the same way everywhere: producers list them as outlets,
consumers schedule on them. Name `<use case>.<layer>.<table>` and URI as mlops_core.jobs.contract defines
them, the names the jobs key their `asset_extras` by."""

from __future__ import annotations

from airflow.sdk import Asset

from mlops_core import tables
from mlops_core.jobs.contract import asset_name, asset_uri


def table_asset(use_case: str, layer: str, name: str) -> Asset:
    return Asset(name=asset_name(use_case, layer, name), uri=asset_uri(use_case, layer, name))


def bronze_asset(use_case: str, source: str) -> Asset:
    """bronze.<source>, updated by ingest_raw (one event per ingest task, extra = the job's counts)."""
    table = tables.bronze(source)
    return table_asset(use_case, table.layer, table.name)


def predictions_asset(use_case: str) -> Asset:
    """gold.predictions, updated by batch_score (extra: as_of_dates, model_name, model_version, model_alias,
    shadow_version, rows per date, predictions_version, feature_table_version)."""
    return table_asset(use_case, tables.PREDICTIONS.layer, tables.PREDICTIONS.name)


def drift_asset(use_case: str) -> Asset:
    """monitoring.drift_metrics, updated by drift_report (extra = the night's drift summary: date, model version,
    drift_share, dataset_drifted, drifted_features, key_features_drifted, report_uri)."""
    return table_asset(use_case, tables.DRIFT_METRICS.layer, tables.DRIFT_METRICS.name)


def feature_asset(use_case: str, entity: str) -> Asset:
    """features.<entity>_features, updated by materialize_features (extra: dates / as_of_dates written, rows per
    date, feature_table_version, bronze_versions read, spec_hash)."""
    table = tables.features(entity)
    return table_asset(use_case, table.layer, table.name)
