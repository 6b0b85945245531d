"""The champion_training reference of a drift report: the population of the training snapshots of the model
version that scored the day, rebuilt from its lineage tags, scored by that version, and kept in the report
store once per model version (its training data is pinned, so it never changes)."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.features.spec import AS_OF_DATE
from mlops_core.monitoring.inputs import DriftInputError, features_at

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.config import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse
    from mlops_core.monitoring.store import ReportStore

log = logging.getLogger("mlops.monitoring")

def model_lineage(model_name: str, model_version: str, client=None) -> dict[str, str]:
    """The `mlops.*` lineage tags of a registered model version (tag names: mlops_core.training.lineage)."""
    from mlops_core.training.lineage import from_tags

    if client is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
    return from_tags(dict(client.get_model_version(model_name, str(model_version)).tags))


def champion_reference(spark: SparkSession, lakehouse: Lakehouse, use_case: UseCaseConfig, model_name: str,
                       model_version: str, client=None) -> tuple[DataFrame, dict[str, Any]]:
    """The population of the model version's training snapshots: the as-of dates its training set joined
    (its labels window at the recorded label table version, point in time, as training did), with every
    entity of those snapshots at the recorded feature table version. The labelled rows alone are a different
    population (entities that had a label, e.g. the active ones) from the scored snapshot, which holds every
    entity: comparing them flags fixed attributes as drifted.

    Warm-up snapshots (a window reaching back before its source's first event: `_covered` false) are left
    out by default (features.warm_up.drift_reference: exclude): their long windows saw a shorter history, so
    the drift of e.g. a 90-day count against them is the data's start, not the customers. When every training
    snapshot is a warm-up one they are all kept, and the reference info says so (`coverage`)."""
    from pyspark.sql import functions as F

    from mlops_core.features.training_set import build_training_set
    from mlops_core.training.labels import read_labels

    tags = model_lineage(model_name, model_version, client)
    needed = ("feature_table_version", "window_start", "window_end")
    missing = [k for k in needed if not tags.get(k)]
    if missing:
        raise DriftInputError(f"model {model_name} version {model_version} lacks lineage tag(s) "
                              f"{['mlops.' + k for k in missing]}: cannot rebuild its training data")
    start, end = date.fromisoformat(tags["window_start"][:10]), date.fromisoformat(tags["window_end"][:10])
    label_version = int(tags["label_table_version"]) if tags.get("label_table_version") else None
    feature_version = int(tags["feature_table_version"])
    labels = read_labels(spark, lakehouse, use_case, start, end, version=label_version,
                         feature_table_version=feature_version)
    ts = build_training_set(spark, lakehouse, use_case, labels, feature_table_version=feature_version)
    keys = use_case.entity.keys
    as_of_dates = [r[0] for r in ts.df.select(AS_OF_DATE).distinct().collect()]
    features = features_at(spark, lakehouse, use_case, feature_version).where(F.col(AS_OF_DATE).isin(as_of_dates))
    as_of_dates, coverage = _leave_out_warm_up(features, as_of_dates, use_case)
    coverage["short_window_columns"] = short_window_columns(features, as_of_dates, use_case)
    df = features.where(F.col(AS_OF_DATE).isin(as_of_dates)).select(*keys, AS_OF_DATE, *ts.feature_columns)
    first, last = (min(as_of_dates), max(as_of_dates)) if as_of_dates else (None, None)
    info = {
        "kind": "champion_training",
        "model_name": model_name,
        "model_version": str(model_version),
        "feature_table_version": feature_version,
        "label_table_version": label_version,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "snapshot_dates": len(as_of_dates),
        "population": f"every {use_case.entity.name} in the {len(as_of_dates)} feature snapshots "
                      f"({first}..{last}) that the training labels joined",
        "description": f"training snapshots of {model_name} v{model_version}: labels {start}..{end}, feature "
                       f"table version {feature_version}, every entity of the {len(as_of_dates)} snapshots joined",
        "coverage": coverage,
    }
    return df, info


def _leave_out_warm_up(features: DataFrame, as_of_dates: list[date], use_case: UseCaseConfig
                       ) -> tuple[list[date], dict[str, Any]]:
    """The reference's snapshot dates after the warm-up rule, and what the rule did (for the report)."""
    from mlops_core.features.training_set import covered_dates

    mode = use_case.features.warm_up.drift_reference if use_case.features else "flag"
    flags = {r[0]: bool(r[1]) for r in covered_dates(features).collect()}
    under = sorted(d for d in as_of_dates if not flags.get(d, True))
    info: dict[str, Any] = {"warm_up": mode, "under_covered_dates": len(under),
                            "under_covered_range": [under[0].isoformat(), under[-1].isoformat()] if under else None}
    if not under or mode == "flag":
        info["note"] = f"{len(under)} warm-up snapshot date(s) kept" if under else "every snapshot fully covered"
        return as_of_dates, info
    kept = [d for d in as_of_dates if d not in set(under)]
    if not kept:
        log.warning("every one of the %d training snapshot dates is a warm-up one (a window reaches back before its "
                    "source's first event): the reference keeps them all", len(under))
        info["note"] = ("every training snapshot is a warm-up one: all kept; long-window features are capped by "
                        "the data's start")
        return as_of_dates, info
    log.info("drift reference: left out %d warm-up snapshot date(s) %s..%s, kept %d", len(under), under[0],
             under[-1], len(kept))
    info["note"] = f"left out {len(under)} warm-up snapshot date(s), kept {len(kept)}"
    return kept, info


def short_window_columns(features: DataFrame, as_of_dates: list[date], use_case: UseCaseConfig) -> list[str]:
    """Windowed feature columns whose window is longer than the history of at least half of `as_of_dates`
    (their drift against this reference would mostly be the data's start): per source for aggregates, the
    shortest history of all sources for derived features. A window the majority of the reference covered stays
    compared: its first few capped days barely move the distribution, and dropping every window as soon as
    one early snapshot is short would leave the report only the attributes."""
    from pyspark.sql import functions as F

    from mlops_core.features.spec import HISTORY_DAYS

    if use_case.features is None or HISTORY_DAYS not in features.columns or not as_of_dates:
        return []
    rows = (features.where(F.col(AS_OF_DATE).isin(as_of_dates)).groupBy(AS_OF_DATE)
            .agg(F.first(HISTORY_DAYS, ignorenulls=True)).collect())
    histories = [dict(r[1]) for r in rows if r[1] is not None]
    if not histories:
        return []
    out = []
    for col in use_case.features.columns():
        if col.window is None:
            continue
        have = [h.get(col.source or "", 0) if col.kind == "aggregate" else min(h.values(), default=0)
                for h in histories]
        if 2 * sum(col.window > days for days in have) >= len(have):
            out.append(col.name)
    return out


def score_reference(reference: pd.DataFrame, model_name: str, model_version: str) -> Any:
    """Scores of the reference rows by the model version itself (pyfunc returning probabilities, or values for
    a regression model)."""
    import mlflow.pyfunc
    import numpy as np

    from mlops_core.promotion.evaluate import conform

    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{model_version}")
    schema = model.metadata.get_input_schema()
    names = [n for n in (schema.input_names() if schema is not None else []) if n in reference.columns]
    # counts stored as integers are widened to the signature's doubles, as the gate and scoring do
    out = model.predict(conform(model, reference, names) if names else reference)
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    out = np.asarray(out, dtype="float64")
    return out[:, -1] if out.ndim == 2 else out


# ---- the champion reference, built once per model version ---------------------------------------------
REFERENCE_FOLDER = "_reference"  # in the report store, next to the dated report folders
REFERENCE_FORMAT = 3  # bump when the cached frame's layout changes: older files are then ignored


def reference_cache_name(model_name: str, model_version: str, max_rows: int, seed: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)
    return f"champion-{safe}-v{model_version}-rows{max_rows}-seed{seed}-f{REFERENCE_FORMAT}.parquet"


def load_cached_reference(store: ReportStore, name: str) -> tuple[pd.DataFrame, int, dict[str, Any]] | None:
    """(sample, rows before sampling, reference info) of a champion reference stored earlier, or None.

    A model version's training data is pinned (label and feature table versions in its lineage), so its
    sampled and scored reference never changes: nights after the first read it instead of rebuilding the
    point-in-time training set and scoring it again."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="drift-reference-") as tmp:
        local = Path(tmp) / name
        if not store.get(REFERENCE_FOLDER, name, local):
            return None
        table = pq.read_table(local)
    meta = json.loads((table.schema.metadata or {}).get(b"mlops.reference", b"{}"))
    if "rows_total" not in meta or "info" not in meta:
        return None
    return table.to_pandas(), int(meta["rows_total"]), {**meta["info"], "cached": True}


def save_cached_reference(store: ReportStore, name: str, frame: pd.DataFrame, rows_total: int,
                          info: dict[str, Any]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}),
            b"mlops.reference": json.dumps({"rows_total": rows_total, "info": info}, default=str).encode()}
    with tempfile.TemporaryDirectory(prefix="drift-reference-") as tmp:
        local = Path(tmp) / name
        pq.write_table(table.replace_schema_metadata(meta), local)
        return store.put(REFERENCE_FOLDER, local, name)
