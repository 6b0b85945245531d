"""The `serving:` section and the routing table: sticky hash buckets, the configured split on 10,000 keys, the
primary taking the traffic of a missing alias, shadow mode, and clear errors for a bad section."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from mlops_core.serving.routing import ServedEntity, bucket, build_table
from mlops_core.serving.spec import ServingSpec


def _entities(*names):
    return {n: ServedEntity(n, n, SimpleNamespace(version=i + 1, describe=dict, inputs=())) for i, n in enumerate(names)}


def test_buckets_are_stable_across_processes_and_salted_by_use_case():
    keys = [f"C{i:05d}" for i in range(50)]
    here = [bucket("churn", k) for k in keys]
    code = "from mlops_core.serving.routing import bucket; print([bucket('churn', f'C{i:05d}') for i in range(50)])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert eval(there) == here  # noqa: S307 - our own output
    assert all(0 <= b < 10_000 for b in here)
    assert here != [bucket("spend", k) for k in keys]


def test_default_split_on_10000_keys_is_80_20_and_sticky():
    table = build_table("churn", ServingSpec(), _entities("champion", "challenger"))
    keys = [f"C{i:06d}" for i in range(10_000)]
    routed = [table.route(k).name for k in keys]
    share = routed.count("challenger") / len(keys)
    assert 0.185 <= share <= 0.215, share
    assert routed == [table.route(k).name for k in keys]
    assert table.percentages == {"champion": 80, "challenger": 20}


def test_without_the_challenger_the_champion_takes_everything():
    table = build_table("churn", ServingSpec(), _entities("champion"))
    assert {table.route(f"K{i}").name for i in range(2000)} == {"champion"}
    assert table.percentages == {"champion": 100} and table.missing == ("challenger",)
    with pytest.raises(ValueError, match="primary"):
        build_table("churn", ServingSpec(), _entities("challenger"))


def test_shadow_mode_routes_to_the_primary_and_shadows_the_others():
    spec = ServingSpec(mode="shadow")
    table = build_table("churn", spec, _entities("champion", "challenger"))
    assert {table.route(f"K{i}").name for i in range(2000)} == {"champion"}
    assert [e.name for e in table.shadows(table.primary)] == ["challenger"]
    assert table.percentages == {"champion": 100, "challenger": 0}


def test_custom_routes_three_entities_and_route_order():
    spec = ServingSpec.model_validate({
        "served_entities": [{"name": "champion"}, {"name": "challenger"}, {"name": "canary", "alias": "exp"}],
        "traffic_config": {"routes": [{"served_entity_name": "canary", "traffic_percentage": 5},
                                      {"served_entity_name": "champion", "traffic_percentage": 90},
                                      {"served_entity_name": "challenger", "traffic_percentage": 5}]}})
    table = build_table("churn", spec, _entities("champion", "challenger", "canary"))
    keys = [f"C{i:06d}" for i in range(10_000)]
    assert all(table.route(k).name == "canary" for k in keys if bucket("churn", k) < 500)
    shares = {n: sum(table.route(k).name == n for k in keys) / len(keys) for n in ("champion", "challenger", "canary")}
    assert shares["canary"] == pytest.approx(0.05, abs=0.01) and shares["champion"] == pytest.approx(0.9, abs=0.015)
    assert spec.served_entities[2].registry_alias == "exp"


@pytest.mark.parametrize("section, message", [
    ({"traffic_config": {"routes": [{"served_entity_name": "champion", "traffic_percentage": 70}]}}, "add up to 70"),
    ({"traffic_config": {"routes": [{"served_entity_name": "ghost", "traffic_percentage": 100}]}}, "not a served"),
    ({"mode": "canary"}, "mode"),
    ({"served_entities": [{"name": "a b"}]}, "invalid served entity name"),
    ({"served_entities": [{"name": "x", "alias": "champion"}, {"name": "y", "alias": "champion"}]}, "served twice"),
    ({"auth_token_env": "not-a-var"}, "environment variable"),
    ({"max_batch_rows": 0}, "max_batch_rows"),
    ({"routes": []}, "routes"),
])
def test_bad_sections_are_refused_with_the_key(section, message):
    with pytest.raises(ValidationError, match=message):
        ServingSpec.model_validate(section)


def test_churn_yaml_serving_section_and_a_config_error_names_the_key(tmp_path):
    from mlops_core.config import ConfigError, load_use_case
    from mlops_core.config.loader import project_root

    cfg = load_use_case("churn")
    assert cfg.serving.mode == "ab" and cfg.serving.percentages() == {"champion": 80, "challenger": 20}
    text = (project_root() / "include" / "config" / "use_cases" / "churn.yaml").read_text()
    bad = tmp_path / "churn.yaml"
    bad.write_text(text.replace("mode: ab ", "mode: split "))
    with pytest.raises(ConfigError, match=r"serving\.mode"):
        load_use_case(path=bad)
