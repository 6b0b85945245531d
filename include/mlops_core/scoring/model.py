"""The model side of batch scoring: pin versions, fetch a version once, check it against the feature table.

Pinning. `resolve_for_scoring` turns `champion` (or an explicit version) into a concrete version number, and
the `challenger` alias into the shadow version, ONCE per orchestrator run; every later step receives numbers,
never aliases, so a promotion in the middle of a run cannot mix two models in one prediction table.

Loading. `load_package` downloads the version's artifacts on the driver once and packs what executors need
(it travels inside the scoring UDF, so executors never call MLflow, whose address and account they may not
have on a shared Spark server):
  * the project's probability pyfunc (mlops_core.training.pyfunc_model: an XGBoost booster + a FeatureEncoder
    as artifacts): the booster bytes and the encoder's JSON. Executors rebuild the booster once per Python
    worker and call `inplace_predict` on inputs Spark already encoded: no MLflow import, no per-batch schema
    enforcement, no DMatrix copy, no strings through Arrow;
  * any other pyfunc: the model folder as a zip; executors unpack it and `mlflow.pyfunc.load_model` it once
    per worker. Its output must be probabilities in [0, 1] (binary) or finite values (regression).

Task. A package carries the task of its model (`binary` | `regression`): what the pyfunc recorded in its
model_config when it was logged (the project's regression models do), else None; the scorer then checks it
against the use case's model.task, or adopts the use case's for a model that does not say.

Signature. `check_signature` compares the model's input schema with the feature table's Spark schema and
raises FeatureSchemaMismatch naming every missing column and every incompatible type."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core.errors import InputError
from mlops_core.training.registry import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from pyspark.sql.types import StructType

log = logging.getLogger("mlops.scoring")

FAST_KIND = "xgboost_encoder"
PYFUNC_KIND = "pyfunc"
_ENCODER_KEYS = {"numeric", "categorical", "encoding"}


class ModelResolutionError(RuntimeError):
    """The alias or version asked for does not exist in the registry."""


class FeatureSchemaMismatch(InputError):
    """The feature table no longer matches the model's input signature (missing columns, wrong types)."""


# ---- pinning --------------------------------------------------------------------------------------------
def resolve_for_scoring(
    name: str,
    alias: str = CHAMPION,
    version: int | str | None = None,
    shadow_alias: str | None = CHALLENGER,
    client: MlflowClient | None = None,
) -> dict[str, Any]:
    """Pin the scoring version (explicit `version`, else `alias`) and the shadow version (`shadow_alias`,
    when it exists and differs). Returns the flat dict the score job takes as parameters."""
    from mlops_core.training.registry import get_version, get_version_by_alias

    if version not in (None, ""):
        primary = get_version(name, version, client)
        if primary is None:
            raise ModelResolutionError(f"model {name!r} has no version {version}")
        label = f"v{primary.version}"
    else:
        primary = get_version_by_alias(name, alias, client)
        if primary is None:
            raise ModelResolutionError(
                f"model {name!r} has no version with alias {alias!r}: train and promote a model first, "
                "or pass an explicit model_version"
            )
        label = alias
    shadow = get_version_by_alias(name, shadow_alias, client) if shadow_alias else None
    if shadow is not None and int(shadow.version) == int(primary.version):
        log.info("%s@%s is the scoring version %s itself: no shadow scoring", name, shadow_alias, primary.version)
        shadow = None
    log.info("pinned %s version %s (%s)%s", name, primary.version, label,
             f"; shadow {shadow_alias} = version {shadow.version}" if shadow else "")
    return {
        "model_name": name,
        "model_version": int(primary.version),
        "model_alias": label,
        "model_run_id": primary.run_id or None,
        "shadow_alias": shadow_alias if shadow else None,
        "shadow_version": int(shadow.version) if shadow else None,
        "shadow_run_id": (shadow.run_id or None) if shadow else None,
    }


# ---- the model's input schema ---------------------------------------------------------------------------
@dataclass(frozen=True)
class InputColumn:
    name: str
    type: str  # MLflow column type: double, float, long, integer, string, boolean, ...
    required: bool = False


# Spark type names (DataType.typeName()) a feature column may have for each MLflow input type.
_COMPATIBLE = {
    "double": {"double", "float", "long", "integer", "short", "byte", "decimal"},
    "float": {"float", "long", "integer", "short", "byte"},
    "long": {"long", "integer", "short", "byte"},
    "integer": {"integer", "short", "byte"},
    "string": {"string"},
    "boolean": {"boolean"},
}


def check_signature(inputs: list[InputColumn], schema: StructType, where: str, model: str) -> None:
    """Raise FeatureSchemaMismatch when a model input is missing from `schema` or has a type the model
    cannot take; the message names every offending column (`where`/`model` say which table and version)."""
    fields = {f.name: f.dataType for f in schema.fields}
    missing = [c.name for c in inputs if c.name not in fields]
    wrong = []
    for c in inputs:
        if c.name not in fields:
            continue
        spark_type = fields[c.name].typeName()
        allowed = _COMPATIBLE.get(c.type)
        if allowed is None or spark_type not in allowed:
            wrong.append(f"{c.name} is {fields[c.name].simpleString()}, the model expects {c.type}")
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if wrong:
            parts.append("wrong types: " + "; ".join(wrong))
        raise FeatureSchemaMismatch(
            f"feature table {where} does not match the input signature of {model}: " + ", ".join(parts)
            + ". Rematerialize the features with the definitions the model was trained on, or score with a "
            "model trained on the current feature table."
        )


# ---- the package shipped to executors -------------------------------------------------------------------
@dataclass
class ModelPackage:
    """Everything executors need to score with one model version (picklable)."""

    name: str
    version: int
    alias: str | None
    run_id: str | None
    kind: str  # FAST_KIND or PYFUNC_KIND
    inputs: list[InputColumn]
    digest: str
    booster: bytes | None = None
    encoder: dict[str, Any] | None = None
    archive: bytes | None = field(default=None, repr=False)
    task: str | None = None  # binary | regression; None: the model does not say (the scorer decides)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @property
    def label(self) -> str:
        return f"{self.name} version {self.version}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "alias": self.alias, "run_id": self.run_id,
                "kind": self.kind, "inputs": len(self.inputs), "digest": self.digest}


def _inputs_from_signature(model_meta) -> list[InputColumn] | None:
    sig = model_meta.signature
    if sig is None or sig.inputs is None:
        return None
    out = []
    for spec in sig.inputs.inputs:
        if spec.name is None:
            return None  # tensor-based or unnamed inputs: not a column signature
        type_name = getattr(spec.type, "name", None) or str(spec.type)
        out.append(InputColumn(spec.name, str(type_name).lower(), bool(getattr(spec, "required", True))))
    return out


def _inputs_from_encoder(encoder: dict[str, Any]) -> list[InputColumn]:
    return [InputColumn(c, "double") for c in encoder["numeric"]] + [
        InputColumn(c, "string") for c in encoder["categorical"]
    ]


def _task_of(meta, pyfunc: dict[str, Any], artifacts: dict[str, Any]) -> str | None:
    """The model's task: its model_config (MLmodel `config`), else regression when its single output column is
    `prediction`, else binary for the project's booster + encoder models (all logged before regression
    existed), else None (a pyfunc that does not say)."""
    config = pyfunc.get("config") or pyfunc.get("model_config") or {}
    if isinstance(config, dict) and config.get("task") is not None:
        return str(config["task"])
    outputs = meta.get_output_schema() if meta.signature is not None else None
    if outputs is not None and outputs.has_input_names() and outputs.input_names() == ["prediction"]:
        return "regression"
    return "binary" if {"booster", "encoder"} <= set(artifacts) else None


def _zip_dir(path: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, _dirs, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                zf.write(full, os.path.relpath(full, path))
    return buf.getvalue()


def load_package(pins: dict[str, Any], *, force_pyfunc: bool = False) -> ModelPackage:
    """Download a pinned version once and prepare it for the executors. `pins` has model_name and
    model_version (optionally model_alias, model_run_id), as resolve_for_scoring returns them."""
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    name, version = pins["model_name"], int(pins["model_version"])
    alias, run_id = pins.get("model_alias"), pins.get("model_run_id")
    with tempfile.TemporaryDirectory(prefix="mlops-score-model-") as tmp:
        local = download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        meta = Model.load(os.path.join(local, "MLmodel"))
        if run_id is None:
            run_id = meta.run_id
        pyfunc = meta.flavors.get("python_function")
        if pyfunc is None:
            raise InputError(f"{name} version {version} has no python_function flavor: it cannot be batch scored")
        artifacts = pyfunc.get("artifacts") or {}
        task = _task_of(meta, pyfunc, artifacts)
        if task is not None and task not in ("binary", "regression"):
            raise InputError(f"{name} version {version} declares an unknown task {task!r} in its model_config")
        encoder = booster = None
        kind = PYFUNC_KIND
        # a calibrated model (training.calibration) scores through its pyfunc, which applies the calibration
        if not force_pyfunc and {"booster", "encoder"} <= set(artifacts) and "calibration" not in artifacts:
            with open(os.path.join(local, artifacts["encoder"]["path"]), encoding="utf-8") as fh:
                encoder = json.load(fh)
            if set(encoder) == _ENCODER_KEYS and encoder["encoding"] in ("native", "one_hot"):
                with open(os.path.join(local, artifacts["booster"]["path"]), "rb") as fh:
                    booster = fh.read()
                kind = FAST_KIND
            else:  # an encoder this code does not know: let the model's own code score
                log.warning("%s version %s: unknown encoder format, scoring through pyfunc", name, version)
                encoder = None
        inputs = _inputs_from_signature(meta)
        if inputs is None:
            if encoder is None:
                raise InputError(
                    f"{name} version {version} has no column signature: log the model with a signature so "
                    "scoring can check the feature table against it"
                )
            inputs = _inputs_from_encoder(encoder)
        if encoder is not None:
            expected = [*encoder["numeric"], *encoder["categorical"]]
            if sorted(expected) != sorted(c.name for c in inputs):
                raise InputError(
                    f"{name} version {version}: encoder columns {expected} differ from the signature "
                    f"{[c.name for c in inputs]}"
                )
            if any(c.name in encoder["categorical"] and c.type != "string" for c in inputs):
                # Spark encodes categories by their text; the model's own code knows other types.
                log.warning("%s version %s: non-string categorical inputs, scoring through pyfunc", name, version)
                encoder = booster = None
                kind = PYFUNC_KIND
        archive = None if kind == FAST_KIND else _zip_dir(local)
    digest = hashlib.sha256(booster if booster is not None else archive or b"").hexdigest()[:16]
    digest = hashlib.sha256(f"{name}|{version}|{kind}|{digest}".encode()).hexdigest()[:16]
    return ModelPackage(name=name, version=version, alias=alias, run_id=run_id, kind=kind, inputs=inputs,
                        digest=digest, booster=booster, encoder=encoder, archive=archive, task=task)
