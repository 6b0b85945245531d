"""Fixtures of the feature-stage tests: small generated bronze data, written once per test run and copied
into each test's lakehouse (Delta tables are relocatable folders), so every test starts from the same bronze."""

from __future__ import annotations

import shutil

import pytest

from mlops_core import tables
from tests.features.bronze_data import make_bronze, write_bronze


@pytest.fixture(scope="session")
def frames():
    """Small bronze data (pandas), generated once per test run."""
    return make_bronze()


@pytest.fixture(scope="session")
def bronze_template(spark, tmp_path_factory, frames):
    """A lakehouse holding only the generated bronze tables, written once per test run."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse

    env = load_environment("local")
    root = tmp_path_factory.mktemp("bronze-template")
    env = env.model_copy(update={"storage": env.storage.model_copy(update={"lakehouse_root": str(root)})})
    template = Lakehouse(env, "churn")
    write_bronze(spark, template, load_use_case("churn"), frames)
    return template


def copy_bronze(template, target, sources=("customers", "orders")) -> None:
    for source in sources:
        shutil.copytree(template.path(tables.bronze(source)), target.path(tables.bronze(source)))


@pytest.fixture
def bronze(lakehouse, bronze_template, frames):
    """The generated data as bronze.customers and bronze.orders in this test's lakehouse."""
    copy_bronze(bronze_template, lakehouse)
    return frames
