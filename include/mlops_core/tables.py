"""Names of every table the stages share, and the metadata columns of bronze tables.

One place, so a stage that reads another stage's output never spells a table name by hand."""

from __future__ import annotations

from mlops_core.lakehouse import Table

# Bronze: one table per source, the contract's typed columns plus these, partitioned by INGEST_DATE
# (the logical date whose landing folder the row came from; reruns replace that partition).
INGEST_DATE = "ingest_date"
SOURCE_FILE = "_source_file"
INGEST_RUN_ID = "_ingest_run_id"
INGESTED_AT = "_ingested_at"
BRONZE_METADATA_COLUMNS = (INGEST_DATE, SOURCE_FILE, INGEST_RUN_ID, INGESTED_AT)


def bronze(source: str) -> Table:
    return Table("bronze", source)


# Rejected rows and files: source, ingest_date, raw content, reasons, source file, run id.
QUARANTINE = Table("bronze", "quarantine")


def features(entity: str) -> Table:
    """Feature snapshots keyed by (entity key, as_of_date)."""
    return Table("features", f"{entity}_features")


def latest_features(entity: str) -> Table:
    """One row per entity: its newest snapshot, for online-style lookups."""
    return Table("features", f"{entity}_features_latest")


PREDICTIONS = Table("gold", "predictions")
SHADOW_PREDICTIONS = Table("gold", "shadow_predictions")
DRIFT_METRICS = Table("monitoring", "drift_metrics")
PROMOTION_HISTORY = Table("ops", "promotion_history")
TRAINING_REFERENCE = Table("ops", "training_reference")
# The serving process's inference log, one row per request row, partitioned by request_date (the compaction job
# replaces a date); the online A/B report's results, one row per (report_date, served entity).
INFERENCE_LOG = Table("monitoring", "inference_log")
AB_RESULTS = Table("monitoring", "ab_results")
