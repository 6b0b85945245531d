"""The `features` section of a use-case config: declarative features of the use case's entity.

Example (include/config/use_cases/churn.yaml):

    features:
      description: Customer behaviour and attributes at the end of each day.
      attributes:                       # one row per entity, carried forward day to day
        source: customers
        features:
          - {name: plan, description: Subscription plan}
          - {name: tenure_days, expr: "datediff(as_of_date, signup_date)", description: Days since sign-up}
      # or a list of such mappings, one per attribute source (e.g. a reference table with `event_time: null`):
      # attributes:
      #   - {source: customers, features: [...]}
      #   - {source: accounts, features: [...]}
      # an attribute group may look up sources keyed by its columns (as of the end of the snapshot date):
      #   lookups: [{source: country_info, keys: [country], lookup_keys: [code], columns: [{name: region}]}]
      aggregations:                     # events of a source, per entity, over trailing windows
        - source: orders
          windows: [30, 90]
          features:
            - {name: total_orders, agg: count, description: Orders placed}
            - {name: total_spent, agg: sum, column: amount, description: Sum of order amounts}
          # lookups: other sources joined to each event point in time, their columns aggregated like its own:
          # lookups:
          #   - {source: weather, keys: [origin], ttl_hours: 3, columns: [{name: origin_temp, column: temp}]}
      # lookups keyed by features of the snapshot (e.g. a `latest` origin), as of the end of the snapshot date;
      # each looked-up column is a feature:
      # lookups:
      #   - {source: weather, keys: [last_origin_7d], lookup_keys: [origin], ttl_hours: 6,
      #      columns: [{name: origin_temp, column: temp, description: ...}]}
      derived:                          # expressions over other features, once per common window
        - name: avg_days_between_orders
          expr: "(days_since_first_order - days_since_last_order) / NULLIF(total_orders - 1, 0)"
          description: Mean gap in days between consecutive orders

A windowed feature `total_orders` with windows [30, 90] becomes the columns `total_orders_30d` and
`total_orders_90d`. Semantics of a snapshot (see docs/features.md): a snapshot as of date D describes the
entity at the END of day D, from events dated on or before D that had arrived (ingest_date) by D; the
window of w days is [D - w + 1, D]. It may only be joined to labels observed strictly after D.

Plain pydantic, no heavy import: DAG files load the use case while parsing. Checks that need the sources
(columns exist, types fit) run in `check_sources`, called by UseCaseConfig."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from mlops_core.features.lookup_spec import LookupSpec, SnapshotLookupSpec, check_lookups
from mlops_core.features.spec_base import _NAME, AS_OF_DATE, _Strict
from mlops_core.features.sqlexpr import ExpressionError, referenced_names

if TYPE_CHECKING:
    from mlops_core.ingest.spec import SourceSpec

RESERVED = {AS_OF_DATE}
# Coverage of a snapshot (written by materialize.py, read by training sets and drift references).
HISTORY_DAYS = "_history_days"
COVERED = "_covered"

Aggregation = Literal[
    "count", "sum", "avg", "stddev", "min", "max", "count_distinct", "days_since_last", "days_since_first",
    "active_days", "latest", "earliest",
]
# Which aggregations read a column: required, optional (count: non-null values of it), or none (event dates).
NEEDS_COLUMN = {"sum", "avg", "stddev", "min", "max", "count_distinct", "latest", "earliest"}
# The value of the newest / oldest event in the window (any column type; ties broken by the primary key).
BY_EVENT_TIME = {"latest", "earliest"}
NO_COLUMN = {"days_since_last", "days_since_first", "active_days"}
NUMERIC_ONLY = {"sum", "avg", "stddev"}
# Value of an aggregate for an entity with no event in the window (the others are NULL there).
ZERO_WHEN_EMPTY = {"count", "sum", "count_distinct", "active_days"}
NUMERIC_TYPES = {"int", "long", "double", "float"}

Window = Annotated[int, Field(gt=0, le=3660, description="Window length in days, ending with the as-of date")]


def _is_numeric(spark_type: str) -> bool:
    return spark_type in NUMERIC_TYPES or spark_type.startswith("decimal")


class AggregateFeature(_Strict):
    name: str = Field(pattern=_NAME, description="Base name; each window adds the suffix _<w>d")
    agg: Aggregation
    column: str | None = Field(default=None, description="Source column aggregated (not for event-date aggs)")
    windows: list[Window] | None = Field(default=None, min_length=1, description="Overrides the group's windows")
    filter: str | None = Field(
        default=None, min_length=1,
        description="Spark SQL predicate over the source's columns: only events where it is true count",
    )
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _column_fits_agg(self) -> AggregateFeature:
        if self.agg in NEEDS_COLUMN and not self.column:
            raise ValueError(f"aggregation {self.agg!r} needs a `column`")
        if self.agg in NO_COLUMN and self.column:
            raise ValueError(f"aggregation {self.agg!r} works on event dates and takes no `column`")
        if self.filter is not None:
            try:
                _scan(self.filter)
            except ValueError as exc:
                raise ValueError(f"filter: {exc}") from None
        return self


class AggregationGroup(_Strict):
    source: str = Field(description="Source (bronze table) holding the events")
    event_time: str | None = Field(default=None, description="Event time column; default: the source's event_time")
    windows: list[Window] = Field(min_length=1)
    lookups: list[LookupSpec] = Field(
        default_factory=list,
        description="Other sources joined to each event point in time (e.g. weather at the event's origin); "
        "their columns are aggregated like the event's own",
    )
    features: list[AggregateFeature] = Field(min_length=1)


class AttributeFeature(_Strict):
    name: str = Field(pattern=_NAME)
    column: str | None = Field(default=None, description="Source column copied as is; default: the feature name")
    expr: str | None = Field(
        default=None, description="Spark SQL over the source's columns and `as_of_date`, e.g. datediff(...)"
    )
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _column_or_expr(self) -> AttributeFeature:
        if self.column and self.expr:
            raise ValueError("give either `column` or `expr`, not both")
        if self.expr:
            _scan(self.expr)
        elif not self.column:
            self.column = self.name
        return self

    @property
    def sql(self) -> str:
        return self.expr or f"`{self.column}`"

    def references(self) -> list[str]:
        return referenced_names(self.expr) if self.expr else [self.column or self.name]


class AttributesSpec(_Strict):
    source: str = Field(description="Source with one row per entity (its primary key is the entity key)")
    lookups: list[LookupSpec] = Field(
        default_factory=list,
        description="Other sources joined to the entity's row through its columns (e.g. its country), as of the "
        "snapshot date; the features may use their columns",
    )
    features: list[AttributeFeature] = Field(min_length=1)


def _attributes_form(value: Any) -> str:
    """Which form `features.attributes` takes. The tags are the names the config loader strips from an error's
    location (a member type's name), so a message names the key as written: features.attributes.features.0..."""
    if value is None:
        return "none"
    return "list" if isinstance(value, list) else "AttributesSpec"


# One mapping (one attribute source, the original form) or a list of them (several attribute sources).
Attributes = Annotated[
    Annotated[AttributesSpec, Tag("AttributesSpec")]
    | Annotated[list[AttributesSpec], Field(min_length=1), Tag("list")]
    | Annotated[None, Tag("none")],
    Discriminator(_attributes_form),
]


class DerivedFeature(_Strict):
    name: str = Field(pattern=_NAME)
    expr: str = Field(min_length=1, description="Spark SQL over other features' base names")
    windows: list[Window] | None = Field(
        default=None, min_length=1, description="Default: every window all the referenced windowed features have"
    )
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _scannable(self) -> DerivedFeature:
        _scan(self.expr)
        return self


def _scan(expr: str) -> list[str]:
    try:
        return referenced_names(expr)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class FeatureColumn:
    """One column of the feature table, after windows are expanded."""

    name: str
    kind: Literal["attribute", "aggregate", "lookup", "derived"]
    base: str
    description: str
    window: int | None = None
    source: str | None = None
    agg: str | None = None
    column: str | None = None
    expr: str | None = None  # attribute expr (SQL) or derived expr in base names
    filter: str | None = None  # aggregate: predicate over the source's columns
    keys: tuple[str, ...] = ()  # lookup: the snapshot's columns it is keyed by

    @property
    def comment(self) -> str:
        if self.kind == "lookup":  # where the value comes from, as a windowed column says its window
            return (f"{self.description} ({self.source}.{self.column} looked up by {', '.join(self.keys)}, as of "
                    f"the end of as_of_date)")
        if self.window is None:
            return self.description
        where = f", where {self.filter}" if self.filter else ""
        return f"{self.description} (events dated in the {self.window} days up to and including as_of_date{where})"


def windowed(base: str, window: int) -> str:
    return f"{base}_{window}d"


WarmUpMode = Literal["exclude", "flag"]


class WarmUpSpec(_Strict):
    """What readers do with an under-covered snapshot: one whose longest window of some source reaches back
    before that source's first event landed by the as-of date (its windows describe a shorter history than
    their names say). The feature table marks each snapshot (`_covered`, `_history_days`)."""

    training: WarmUpMode = Field(
        default="flag",
        description="Training sets: flag (keep the rows, count and log them) or exclude (drop and count them)",
    )
    drift_reference: WarmUpMode = Field(
        default="exclude",
        description="The champion_training drift reference: exclude under-covered snapshot dates, or flag "
        "(keep them, count them in the reference info)",
    )


class FeaturesSpec(_Strict):
    description: str = Field(default="", description="Table comment of the feature table")
    attributes: Attributes = Field(
        default=None,
        description="One mapping {source, features} or a list of them (several attribute sources); each source "
        "has one row per entity",
    )
    aggregations: list[AggregationGroup] = Field(default_factory=list)
    lookups: list[SnapshotLookupSpec] = Field(
        default_factory=list,
        description="Sources joined to each snapshot row through some of its features (e.g. the newest origin "
        "-> the weather there), as of the end of the snapshot date; each looked-up column is a feature",
    )
    derived: list[DerivedFeature] = Field(default_factory=list)
    partition_slack_days: int = Field(
        default=1,
        ge=0,
        le=31,
        description="Extra bronze partitions read before a window: events stamped up to this many days after "
        "the day they landed (clock or time-zone skew) still count",
    )
    snapshot_ttl_days: int = Field(
        default=7,
        ge=1,
        description="Training sets join a label to the newest snapshot at most this many days before it",
    )
    warm_up: WarmUpSpec = Field(
        default_factory=WarmUpSpec, description="Handling of snapshots whose windows are not fully covered"
    )

    @model_validator(mode="before")
    @classmethod
    def _attributes_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and not isinstance(data.get("attributes"), dict | list | AttributesSpec | None):
            raise ValueError(
                "features.attributes: give one mapping {source, features} or a list of such mappings (one per "
                f"attribute source), got {type(data['attributes']).__name__} {data['attributes']!r}"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesSpec:
        if self.attributes is None and not self.aggregations:
            raise ValueError("define `attributes` or `aggregations` (or both)")
        self.columns()  # raises on duplicate names and derived features that reference unknown features
        return self

    # ---- expansion ----------------------------------------------------------------------------------
    def attribute_groups(self) -> list[tuple[str, AttributesSpec]]:
        """(YAML key, group) of every attribute source in config order: `features.attributes` for the single
        mapping, `features.attributes[i]` for the list form."""
        if self.attributes is None:
            return []
        if isinstance(self.attributes, AttributesSpec):
            return [("features.attributes", self.attributes)]
        return [(f"features.attributes[{i}]", group) for i, group in enumerate(self.attributes)]

    def attribute_sources(self) -> list[str]:
        return [group.source for _, group in self.attribute_groups()]

    def columns(self, reserved: set[str] = RESERVED) -> list[FeatureColumn]:
        """Every feature column in table order: attributes, aggregates, snapshot lookups, derived. Validates
        names: unique and none of `reserved` (as_of_date; check_sources adds the entity key)."""
        cols: list[FeatureColumn] = []
        where: dict[str, str] = {}

        def add(col: FeatureColumn, key: str) -> None:
            if col.name in reserved:
                raise ValueError(f"{key}: {col.name!r} is a reserved column name (snapshot key)")
            if col.name in where:
                raise ValueError(f"{key}: duplicate feature name {col.name!r} (also defined at {where[col.name]})")
            where[col.name] = key
            cols.append(col)

        attribute_names: set[str] = set()
        first_entry: dict[str, str] = {}
        for prefix, group in self.attribute_groups():
            if group.source in first_entry:
                raise ValueError(
                    f"{prefix}.source: source {group.source!r} is already an attribute source "
                    f"({first_entry[group.source]}); list its features in one entry"
                )
            first_entry[group.source] = prefix
            for i, f in enumerate(group.features):
                add(
                    FeatureColumn(f.name, "attribute", f.name, f.description, source=group.source,
                                  column=f.column, expr=f.expr),
                    f"{prefix}.features[{i}] ({f.name})",
                )
                attribute_names.add(f.name)
        windows_of: dict[str, list[int]] = {}
        for g, group in enumerate(self.aggregations):
            for i, f in enumerate(group.features):
                key = f"features.aggregations[{g}].features[{i}] ({f.name})"
                wins = sorted(set(f.windows or group.windows))
                if f.name in windows_of or f.name in attribute_names:
                    raise ValueError(f"{key}: duplicate feature name {f.name!r}")
                windows_of[f.name] = wins
                for w in wins:
                    add(
                        FeatureColumn(windowed(f.name, w), "aggregate", f.name, f.description, window=w,
                                      source=group.source, agg=f.agg, column=f.column, filter=f.filter),
                        key,
                    )
        # Looked-up columns are unwindowed, like attributes: derived features may use them by name.
        for j, lk in enumerate(self.lookups):
            for k, c in enumerate(lk.columns):
                key = f"features.lookups[{j}].columns[{k}] ({c.name})"
                if c.name in windows_of:  # a derived expr could not tell the two apart
                    raise ValueError(f"{key}: duplicate feature name {c.name!r} (the base name of an aggregate "
                                     f"feature)")
                add(FeatureColumn(c.name, "lookup", c.name, c.description, source=lk.source, column=c.column,
                                  keys=tuple(lk.keys)), key)
                attribute_names.add(c.name)
        for i, d in enumerate(self.derived):
            key = f"features.derived[{i}] ({d.name})"
            refs = _scan(d.expr)
            unknown = [r for r in refs if r not in windows_of and r not in attribute_names]
            if unknown:
                known = sorted([*windows_of, *attribute_names])
                raise ValueError(f"{key}: expr references unknown feature(s) {unknown}; known: {known}")
            windowed_refs = [r for r in refs if r in windows_of]
            if not windowed_refs:
                if d.windows:
                    raise ValueError(f"{key}: `windows` given but the expr references no windowed feature")
                add(FeatureColumn(d.name, "derived", d.name, d.description, expr=d.expr), key)
                continue
            common = sorted(set.intersection(*(set(windows_of[r]) for r in windowed_refs)))
            wins = sorted(set(d.windows)) if d.windows else common
            missing = sorted(set(wins) - set(common))
            if missing or not wins:
                raise ValueError(
                    f"{key}: windows {missing or wins} are not defined for every referenced feature "
                    f"{windowed_refs} (common windows: {common})"
                )
            for w in wins:
                add(FeatureColumn(windowed(d.name, w), "derived", d.name, d.description, window=w, expr=d.expr), key)
        return cols

    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns()]

    def sources(self) -> list[str]:
        """Sources the features read, attribute sources first."""
        names = self.attribute_sources()
        for g in self.aggregations:
            if g.source not in names:
                names.append(g.source)
        lookups = [lk for _, a in self.attribute_groups() for lk in a.lookups]
        lookups += [*(lk for g in self.aggregations for lk in g.lookups), *self.lookups]
        for lk in lookups:  # lookup sources last
            if lk.source not in names:
                names.append(lk.source)
        return names

    def longest_window(self, source: str | None = None) -> int:
        wins = [c.window for c in self.columns() if c.kind == "aggregate" and (source is None or c.source == source)]
        return max(wins, default=0)

    # ---- checks against the sources ----------------------------------------------------------------
    def check_sources(self, sources: dict[str, SourceSpec], entity_keys: Sequence[str]) -> None:
        """Every referenced source and column exists with a fitting type. Raises ValueError naming the key."""

        def source_of(name: str, key: str) -> SourceSpec:
            if name not in sources:
                raise ValueError(f"{key}: unknown source {name!r}; defined sources: {sorted(sources)}")
            return sources[name]

        def types(src: SourceSpec) -> dict[str, str]:
            return {c.name: c.type for c in src.columns}

        keys = list(entity_keys)
        shown = f"[{', '.join(keys)}]"
        columns = self.columns(reserved={*RESERVED, *keys})
        # The snapshot's columns before its own lookups (name -> Spark type, None when only Spark knows it): what
        # `features.lookups` may be keyed by.
        snapshot: dict[str, str | None] = {}

        for prefix, group in self.attribute_groups():
            key = f"{prefix}.source"
            src = source_of(group.source, key)
            if sorted(src.primary_key) != sorted(keys):
                lacking = [k for k in keys if k not in src.primary_key]
                detail = (f"; key column {lacking[0]!r} is not in its primary key" if lacking and len(keys) > 1
                          else "")
                raise ValueError(
                    f"{key}: source {group.source!r} must have one row per entity "
                    f"(primary_key {shown}), it has {src.primary_key}{detail}"
                )
            looked_up = check_lookups(prefix, f"the attribute source {group.source!r}", group.lookups, types(src),
                                      sources, {})
            for k in keys:
                snapshot.setdefault(k, looked_up[k])
            for f in group.features:
                snapshot[f.name] = None if f.expr else looked_up.get(f.column or f.name)
            allowed = {*looked_up, AS_OF_DATE}
            for i, f in enumerate(group.features):
                unknown = [r for r in f.references() if r not in allowed]
                if unknown:
                    raise ValueError(
                        f"{prefix}.features[{i}] ({f.name}): unknown column(s) {unknown} of source "
                        f"{group.source!r}; columns: {sorted(allowed)}"
                    )
        event_times: dict[str, str] = {}
        lookup_names: dict[str, dict[str, str]] = {}  # per event source: looked-up column -> where defined
        for g, group in enumerate(self.aggregations):
            src = source_of(group.source, f"features.aggregations[{g}].source")
            cols = types(src)
            lacking = [k for k in keys if k not in cols]
            if lacking:
                raise ValueError(
                    f"features.aggregations[{g}].source: source {group.source!r} has no entity key column "
                    f"{lacking[0]!r}" + (f" (entity key {shown})" if len(keys) > 1 else "")
                )
            event_time = group.event_time or src.event_time
            if event_time is None:
                raise ValueError(
                    f"features.aggregations[{g}].event_time: source {group.source!r} has no event time "
                    f"(`event_time: null`, a reference table); aggregating it over windows needs a date or "
                    f"timestamp column: set `event_time` on this aggregation group"
                )
            if cols.get(event_time) not in ("date", "timestamp"):
                raise ValueError(
                    f"features.aggregations[{g}].event_time: {event_time!r} must be a date or timestamp column "
                    f"of source {group.source!r} (found {cols.get(event_time, 'no such column')})"
                )
            if event_times.setdefault(group.source, event_time) != event_time:
                raise ValueError(
                    f"features.aggregations[{g}].event_time: source {group.source!r} is already aggregated on "
                    f"{event_times[group.source]!r}; use one event time per source"
                )
            for k in keys:
                snapshot.setdefault(k, cols[k])
            cols = check_lookups(f"features.aggregations[{g}]", f"the event source {group.source!r}", group.lookups,
                                 cols, sources, lookup_names.setdefault(group.source, {}))
            for i, f in enumerate(group.features):
                key = f"features.aggregations[{g}].features[{i}] ({f.name})"
                if f.filter is not None:
                    unknown = [r for r in referenced_names(f.filter) if r not in cols and r != AS_OF_DATE]
                    if unknown:
                        raise ValueError(
                            f"{key}: filter references unknown column(s) {unknown} of source {group.source!r}; "
                            f"columns: {sorted(cols)}"
                        )
                if f.column is None:
                    continue
                if f.column not in cols:
                    raise ValueError(
                        f"{key}: unknown column {f.column!r} of source {group.source!r}; columns: {sorted(cols)}"
                    )
                if f.agg in NUMERIC_ONLY and not _is_numeric(cols[f.column]):
                    raise ValueError(f"{key}: {f.agg} needs a numeric column; {f.column!r} is {cols[f.column]}")
            for c in columns:
                if c.kind == "aggregate" and c.source == group.source:
                    snapshot[c.name] = aggregate_type(c.agg, cols.get(c.column) if c.column else None)
        check_lookups("features", "the snapshot (its entity key, attribute and aggregate features)", self.lookups,
                      snapshot, sources, {})

    def event_time(self, group: AggregationGroup, sources: dict[str, SourceSpec]) -> str:
        event_time = group.event_time or sources[group.source].event_time
        assert event_time is not None, "checked at config load (check_sources)"
        return event_time


def aggregate_type(agg: str | None, column_type: str | None) -> str | None:
    """The Spark type (as the source contracts spell it) of an aggregate over a column of `column_type`; None
    when it depends on more than the config says (a decimal sum or mean)."""
    if agg in ("latest", "earliest", "min", "max"):
        return column_type
    if agg in ("count", "count_distinct", "active_days"):
        return "long"
    if agg in ("days_since_last", "days_since_first"):
        return "int"
    if agg == "stddev" or (agg == "avg" and not (column_type or "").startswith("decimal")):
        return "double"
    if agg == "sum":
        return {"int": "long", "long": "long", "float": "double", "double": "double"}.get(column_type or "")
    return None


def spec_hash(spec: FeaturesSpec) -> str:
    """A short hash of the feature definitions: recorded with every snapshot."""
    import hashlib
    import json

    # warm_up tells readers what to do with snapshots; it does not change a value: not part of the hash. Keys
    # added later with a neutral default (an aggregate's filter) are left out when unset, so a config that
    # does not use them keeps the hash it had.
    data = spec.model_dump(exclude={"warm_up"})
    if not data.get("lookups"):
        data.pop("lookups", None)
    attributes = data.get("attributes")
    for group in attributes if isinstance(attributes, list) else [attributes] if attributes else []:
        if not group.get("lookups"):
            group.pop("lookups", None)
    for group in data["aggregations"]:
        if not group.get("lookups"):
            group.pop("lookups", None)
        for feature in group["features"]:
            if feature.get("filter") is None:
                feature.pop("filter", None)
    return hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()[:16]
