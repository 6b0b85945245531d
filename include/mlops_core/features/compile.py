"""Feature definitions -> Spark SQL expressions (strings), independent of the as-of date.

Every expression is evaluated where a column `as_of_date` (DATE) holds the snapshot date:
- aggregates run in `GROUP BY <key>, as_of_date` over the events of one source, with a column
  `_event_date` = to_date(event time) (UTC days), already restricted to event dates <= as_of_date;
  window w keeps events with `_event_date > date_sub(as_of_date, w)`, i.e. the w days [D - w + 1, D];
  plus the looked-up columns of the group's `lookups` (joined to each event point in time, see LookupPlan);
- attributes run over the entity's row of their attribute source (its columns + as_of_date);
- the snapshot's lookups (`features.lookups`) are keyed by attribute and aggregate feature columns;
- derived features run over the finished feature columns.

Pure Python: the plan can be inspected and unit-tested without Spark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops_core.features.spec import (
    AS_OF_DATE,
    BY_EVENT_TIME,
    ZERO_WHEN_EMPTY,
    FeatureColumn,
    FeaturesSpec,
    LookupSpec,
    windowed,
)
from mlops_core.features.sqlexpr import referenced_names, rename

if TYPE_CHECKING:
    from mlops_core.config import UseCaseConfig

EVENT_DATE = "_event_date"


def _q(name: str) -> str:
    return f"`{name}`"


def in_window(window: int) -> str:
    return f"{_q(EVENT_DATE)} > date_sub({_q(AS_OF_DATE)}, {int(window)})"


def aggregate_sql(col: FeatureColumn, order: list[str] | None = None) -> str:
    """The aggregate expression of one windowed feature (NULL-free for the ZERO_WHEN_EMPTY kinds).

    `order`: the columns that order a source's events for latest/earliest (event time, then the primary key:
    unique per record, so the pick is deterministic)."""
    assert col.kind == "aggregate" and col.window is not None and col.agg is not None
    cond = in_window(col.window)
    if col.filter:  # a NULL predicate counts as false, as in SQL WHERE
        cond = f"({cond}) AND ({col.filter})"
    value = _q(col.column) if col.column else "1"
    if col.agg in BY_EVENT_TIME:
        assert order, "latest/earliest need the ordering columns"
        # The value of the newest (oldest) event with a non-NULL value: max_by over (event time, key) structs;
        # rows outside the window get a NULL ordering, which max_by/min_by skip.
        by = f"CASE WHEN {cond} AND {value} IS NOT NULL THEN struct({', '.join(_q(c) for c in order)}) END"
        return f"{'MAX_BY' if col.agg == 'latest' else 'MIN_BY'}({value}, {by})"
    when = f"CASE WHEN {cond} THEN {value} END"
    when_date = f"CASE WHEN {cond} THEN {_q(EVENT_DATE)} END"
    sql = {
        "count": f"COUNT({when})",
        "sum": f"COALESCE(SUM({when}), 0)",
        "avg": f"AVG({when})",
        "stddev": f"STDDEV_SAMP({when})",
        "min": f"MIN({when})",
        "max": f"MAX({when})",
        # FILTER, not a CASE inside DISTINCT: Spark expands the rows once per distinct argument, and the
        # windows of one column then share it (3 copies of each row instead of 5 for the churn features).
        "count_distinct": f"COUNT(DISTINCT {value}) FILTER (WHERE {cond})",
        "days_since_last": f"DATEDIFF({_q(AS_OF_DATE)}, MAX({when_date}))",
        "days_since_first": f"DATEDIFF({_q(AS_OF_DATE)}, MIN({when_date}))",
        "active_days": f"COUNT(DISTINCT {_q(EVENT_DATE)}) FILTER (WHERE {cond})",
    }[col.agg]
    return sql


def derived_sql(col: FeatureColumn, windowed_bases: set[str]) -> str:
    """A derived feature's expression with base names bound to the columns of its window."""
    assert col.kind == "derived" and col.expr is not None
    window = col.window

    def bind(name: str) -> str | None:
        if name in windowed_bases:
            return windowed(name, window) if window is not None else None
        return name

    return rename(col.expr, bind)


@dataclass(frozen=True)
class LookupPlan:
    """One lookup joined to the events of an aggregated source (or to an attribute source's row of each entity
    and date, as of the end of that date, see lookups.py): each event (as of each snapshot date D) gets the
    looked-up columns of the newest row of `source` whose `lookup_keys` equal the event's `keys`, with a time
    <= the event time (and >= event time - ttl), among the rows landed by D (of a record delivered more than
    once, the newest copy landed by D). Without a time column (a reference table): the newest version landed
    on or before the event's date. No such row: the columns are NULL."""

    source: str
    keys: list[str]  # event columns
    lookup_keys: list[str]  # columns of the lookup source, one per key
    time_column: str | None  # None: a reference table, dated by ingest_date
    ttl_seconds: int | None
    primary_key: list[str]  # of the lookup source
    columns: list[tuple[str, str]]  # (name on the event, column of the lookup source)


@dataclass(frozen=True)
class SourceAggregates:
    """The events of one source and the aggregate columns computed from them."""

    source: str
    event_time: str
    primary_key: list[str]
    longest_window: int
    columns: list[str]  # source columns the aggregation reads (key, primary key, event time, values)
    aggregates: list[tuple[str, str]]  # (feature column, SQL)
    lookups: list[LookupPlan] = field(default_factory=list)


@dataclass(frozen=True)
class AttributeSource:
    """One attribute source: a row per entity, its newest landed version carried forward day to day."""

    source: str
    columns: list[str]  # every contract column of the source
    event_time: str | None  # an entity is known once this date is <= as_of_date; None: a reference table
    attributes: list[tuple[str, str]]  # (feature column, SQL)
    lookups: list[LookupPlan] = field(default_factory=list)  # joined to the entity's row as of the date


@dataclass(frozen=True)
class FeaturePlan:
    keys: list[str]  # the entity key column(s)
    spec: FeaturesSpec
    columns: list[FeatureColumn]
    attribute_sources: list[AttributeSource]
    sources: list[SourceAggregates]
    derived: list[tuple[str, str]]
    zero_when_empty: list[str] = field(default_factory=list)
    # `features.lookups`: joined to the snapshot rows, keyed by their attribute/aggregate features
    lookups: list[LookupPlan] = field(default_factory=list)

    @property
    def attribute_source(self) -> str | None:
        """The first attribute source (the only one in the single-mapping form)."""
        return self.attribute_sources[0].source if self.attribute_sources else None

    @property
    def attributes(self) -> list[tuple[str, str]]:
        return [a for src in self.attribute_sources for a in src.attributes]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def comments(self) -> dict[str, str]:
        return {c.name: c.comment for c in self.columns}


def lookup_plan(lk: LookupSpec, cfg: UseCaseConfig) -> LookupPlan:
    return LookupPlan(
        source=lk.source,
        keys=list(lk.keys),
        lookup_keys=lk.source_keys,
        time_column=lk.time_column or cfg.sources[lk.source].event_time,
        ttl_seconds=lk.ttl_seconds,
        primary_key=list(cfg.sources[lk.source].primary_key),
        columns=[(c.name, c.column or c.name) for c in lk.columns],
    )


def compile_features(cfg: UseCaseConfig) -> FeaturePlan:
    """The full plan of a use case's `features` section (validated at config load)."""
    spec = cfg.features
    if spec is None:
        raise ValueError(f"use case {cfg.name!r} has no `features` section")
    keys = list(cfg.entity.keys)
    columns = spec.columns()

    attribute_sources = [
        AttributeSource(
            source=group.source,
            columns=[c.name for c in cfg.sources[group.source].columns],
            event_time=cfg.sources[group.source].event_time,
            attributes=[(f.name, f.sql) for f in group.features],
            lookups=[lookup_plan(lk, cfg) for lk in group.lookups],
        )
        for _, group in spec.attribute_groups()
    ]

    sources: list[SourceAggregates] = []
    for name in dict.fromkeys(g.source for g in spec.aggregations):
        src = cfg.sources[name]
        groups = [g for g in spec.aggregations if g.source == name]
        event_time = spec.event_time(groups[0], cfg.sources)  # one per source, checked at config load
        aggs = [c for c in columns if c.kind == "aggregate" and c.source == name]
        filtered = [n for c in aggs if c.filter for n in referenced_names(c.filter) if n != AS_OF_DATE]
        lookups = [lookup_plan(lk, cfg) for g in groups for lk in g.lookups]
        own = {c.name for c in src.columns}  # looked-up columns are joined later, not read from the source
        needed = [*keys, *src.primary_key, event_time, *(k for lk in lookups for k in lk.keys),
                  *(n for n in [*(c.column for c in aggs if c.column), *filtered] if n in own)]
        order = list(dict.fromkeys([event_time, *src.primary_key]))
        sources.append(
            SourceAggregates(
                source=name,
                event_time=event_time,
                primary_key=list(src.primary_key),
                longest_window=max(c.window or 0 for c in aggs),
                columns=list(dict.fromkeys(needed)),
                aggregates=[(c.name, aggregate_sql(c, order)) for c in aggs],
                lookups=lookups,
            )
        )

    windowed_bases = {c.base for c in columns if c.kind == "aggregate"}
    derived = [(c.name, derived_sql(c, windowed_bases)) for c in columns if c.kind == "derived"]
    zero = [c.name for c in columns if c.kind == "aggregate" and c.agg in ZERO_WHEN_EMPTY]
    return FeaturePlan(
        keys=keys,
        spec=spec,
        columns=columns,
        attribute_sources=attribute_sources,
        sources=sources,
        derived=derived,
        zero_when_empty=zero,
        lookups=[lookup_plan(lk, cfg) for lk in spec.lookups],
    )
