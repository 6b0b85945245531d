"""Synthetic churn data for the demo and the tests: `python -m mlops_core.datagen --help`."""

from mlops_core.datagen.generator import DRIFT_KINDS, Dataset, GenConfig, generate, simulate, write_landing

__all__ = ["DRIFT_KINDS", "Dataset", "GenConfig", "generate", "simulate", "write_landing"]
