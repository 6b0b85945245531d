"""Sticky, deterministic traffic routing by entity key, and the immutable routing table of an endpoint.

bucket(use_case, key) = first 8 bytes of sha256("<use case>:<key>") mod 10,000. The same key always lands in
the same bucket (in every process, on every machine, after every restart: no Python hash seed), and the buckets
of distinct keys are uniform, so a route of p% gets p% of the keys within sampling error. The use case salts the
hash so that two use cases do not send the same customers to their challengers.

A RoutingTable is built once per (re)load and never changed: the routes' bucket ranges over the entities that
are loaded (an entity whose alias does not exist gives its range to the primary), the loaded models, and the
versions. A non-primary entity is served only when its version passed the gate and is not the primary's
(resolve_served_versions); otherwise its range goes to the primary too. An endpoint swaps it with one reference assignment; a request reads the reference once and finishes
on the table it started with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mlops_core.serving.spec import BUCKETS

if TYPE_CHECKING:
    from mlops_core.serving.predictor import ServedModel
    from mlops_core.serving.spec import ServingSpec


# Gate decisions (promotion.champion.DECISION_TAG) under which a version may take a non-primary share: it passed
# the gate (and awaits approval or promotion), or it was champion once and is deliberately tried again.
SERVABLE_DECISIONS = frozenset({"passed", "awaiting_approval", "promoted"})


def held_back_reason(version: int, tags: dict[str, str], primary_version: int) -> str | None:
    """Why a non-primary served entity's version gets no traffic (None: it is served). A version the gate has not
    passed (not gated yet, rejected, rolled back from) would put live requests on a model nobody validated, and the
    primary's own version under the challenger alias (after its promotion) would make the split a split of noise."""
    from mlops_core.promotion.champion import DECISION_TAG

    if version == primary_version:
        return f"version {version} is the primary's own version"
    decision = tags.get(DECISION_TAG)
    if decision not in SERVABLE_DECISIONS:
        return (f"version {version} has gate decision {decision!r}" if decision
                else f"version {version} has not been through the gate yet")
    return None


def resolve_served_versions(model_name: str, spec: ServingSpec, client=None) -> tuple[dict[str, int], dict[str, str]]:
    """({alias: version} to serve, {alias: why held back}) for the spec's served entities now: the primary's alias
    as it points, the others only when held_back_reason lets them (their share then goes to the primary).
    Aliases that do not exist are in neither."""
    from mlops_core.training.registry import get_version_by_alias

    primary = spec.primary.registry_alias
    found = {e.registry_alias: get_version_by_alias(model_name, e.registry_alias, client)
             for e in spec.served_entities}
    found = {alias: mv for alias, mv in found.items() if mv is not None}
    if primary not in found:
        return {}, {}
    primary_version = int(found[primary].version)
    served, held_back = {primary: primary_version}, {}
    for alias, mv in found.items():
        if alias == primary:
            continue
        reason = held_back_reason(int(mv.version), dict(mv.tags or {}), primary_version)
        if reason:
            held_back[alias] = reason
        else:
            served[alias] = int(mv.version)
    return served, held_back


@lru_cache(maxsize=1 << 16)  # the same customers come back: a hit costs ~0.1 us, a sha256 ~1.5 us
def bucket(use_case: str, key: str) -> int:
    """The key's routing bucket, 0..9999."""
    digest = hashlib.sha256(f"{use_case}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class ServedEntity:
    name: str
    alias: str
    model: ServedModel

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, **self.model.describe()}


@dataclass(frozen=True)
class RoutingTable:
    """What one request sees: loaded entities, routes as bucket ranges, the primary, the mode."""

    use_case: str
    mode: str
    entities: tuple[ServedEntity, ...]  # the loaded ones, primary first
    bounds: tuple[tuple[int, int], ...]  # (exclusive upper bucket, index into entities), ascending
    percentages: dict[str, int]  # effective traffic per loaded entity
    missing: tuple[str, ...] = ()  # configured entities whose alias does not exist now
    # the union of the loaded models' declared inputs: what the inference log keeps of a full-row request
    feature_names: tuple[str, ...] = ()
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def primary(self) -> ServedEntity:
        return self.entities[0]

    def route(self, key: str) -> ServedEntity:
        if self.mode == "shadow" or len(self.entities) == 1:
            return self.entities[0]
        b = bucket(self.use_case, key)
        for upper, index in self.bounds:
            if b < upper:
                return self.entities[index]
        return self.entities[0]  # unreachable: the last bound is BUCKETS

    def shadows(self, served: ServedEntity) -> tuple[ServedEntity, ...]:
        """The entities scored next to `served` (shadow mode: every other loaded entity)."""
        if self.mode != "shadow":
            return ()
        return tuple(e for e in self.entities if e is not served)

    def versions(self) -> dict[str, int]:
        return {e.alias: e.model.version for e in self.entities}

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "served_entities": [e.describe() for e in self.entities],
                "traffic_percentage": dict(self.percentages), "missing_aliases": list(self.missing),
                "loaded_at": self.loaded_at}


def build_table(use_case: str, spec: ServingSpec, loaded: dict[str, ServedEntity]) -> RoutingTable:
    """The routing table over the entities in `loaded` (served entity name -> entity; the primary must be
    there): each route keeps its configured share, a route to an entity not loaded goes to the primary."""
    primary = spec.primary.name
    if primary not in loaded:
        raise ValueError(f"the primary served entity {primary!r} is not loaded")
    order = [e.name for e in spec.served_entities if e.name in loaded]
    entities = tuple(loaded[n] for n in order)
    index = {n: i for i, n in enumerate(order)}
    effective = {n: 0 for n in order}
    for name, pct in spec.percentages().items():
        effective[name if name in loaded else primary] += pct
    if spec.mode == "shadow":
        effective = {n: (100 if n == primary else 0) for n in order}
    bounds, upper = [], 0
    for route in spec.traffic_config.routes:  # ranges in the order the routes are listed
        name = route.served_entity_name if route.served_entity_name in loaded else primary
        if route.traffic_percentage:
            upper += route.traffic_percentage * (BUCKETS // 100)
            bounds.append((upper, index[name]))
    if not bounds or bounds[-1][0] != BUCKETS:
        bounds.append((BUCKETS, 0))
    missing = tuple(e.registry_alias for e in spec.served_entities if e.name not in loaded)
    names = tuple(dict.fromkeys(f.name for e in entities for f in e.model.inputs))
    return RoutingTable(use_case=use_case, mode=spec.mode, entities=entities, bounds=tuple(bounds),
                        percentages=effective, missing=missing, feature_names=names)
