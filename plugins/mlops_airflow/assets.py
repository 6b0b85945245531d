"""Assets of the lakehouse tables, named the same way everywhere: producers list them as outlets,
consumers schedule on them. Name `<use case>.<layer>.<table>`, URI from dag_defaults.asset_uri."""

from __future__ import annotations

from airflow.sdk import Asset

from mlops_airflow.dag_defaults import asset_uri


def table_asset(use_case: str, layer: str, name: str) -> Asset:
    return Asset(name=f"{use_case}.{layer}.{name}", uri=asset_uri(use_case, layer, name))


def bronze_asset(use_case: str, source: str) -> Asset:
    """bronze.<source>, updated by ingest_raw (one event per ingest task, extra = the job's counts)."""
    return table_asset(use_case, "bronze", source)


def predictions_asset(use_case: str) -> Asset:
    """gold.predictions, updated by batch_score (extra: as_of_dates, model_name, model_version, model_alias,
    shadow_version, rows per date, predictions_version, feature_table_version)."""
    return table_asset(use_case, "gold", "predictions")


def drift_asset(use_case: str) -> Asset:
    """monitoring.drift_metrics, updated by drift_report (extra = the night's drift summary: date, model version,
    drift_share, dataset_drifted, drifted_features, key_features_drifted, report_uri)."""
    return table_asset(use_case, "monitoring", "drift_metrics")


def feature_asset(use_case: str, entity: str) -> Asset:
    """features.<entity>_features, updated by materialize_features (extra: dates / as_of_dates written, rows per
    date, feature_table_version, bronze_versions read, spec_hash)."""
    return table_asset(use_case, "features", f"{entity}_features")
