"""`lookups` of the features spec: another source (keyed by other columns than the entity, e.g. weather by
origin and hour) joined point in time to each event of an aggregation group, to an attribute source's row, or
to the snapshot itself through some of its features (`features.lookups`, e.g. the aircraft's newest origin),
and their checks against the sources (see docs/features.md, "Lookups"; the join: lookups.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from mlops_core.features.spec_base import _NAME, AS_OF_DATE, _Strict

if TYPE_CHECKING:
    from mlops_core.ingest.spec import SourceSpec


class LookupColumn(_Strict):
    name: str = Field(pattern=_NAME, description="Name of the looked-up value on each event (aggregate it by it)")
    column: str | None = Field(default=None, description="Column of the lookup source; default: the name")

    @model_validator(mode="after")
    def _default_column(self) -> LookupColumn:
        if not self.column:
            self.column = self.name
        return self


MAX_TTL_HOURS = 3660 * 24
# Names a looked-up column cannot take: the snapshot date and the bronze ingest date the events carry.
LOOKUP_RESERVED = {AS_OF_DATE, "ingest_date"}


class LookupSpec(_Strict):
    """A lookup joined to each event of an aggregation group: the newest row of another source (keyed by other
    columns than the entity, e.g. weather by origin and hour) with matching keys and a time <= the event time
    (and >= event time - ttl), among the rows that had landed by the snapshot date."""

    source: str = Field(description="Lookup source (bronze table), keyed by `lookup_keys`")
    keys: list[str] = Field(min_length=1, description="Event columns matched to the lookup source, in order")
    lookup_keys: list[str] | None = Field(
        default=None, min_length=1, description="Columns of the lookup source matched to `keys`; default: the same names"
    )
    time_column: str | None = Field(
        default=None,
        description="Date or timestamp column of the lookup source: a row applies to events at or after it; "
        "default: the source's event_time. A reference table (event_time: null) without one: the newest version "
        "landed (ingest_date) on or before the event's date",
    )
    ttl_hours: int | None = Field(default=None, gt=0, le=MAX_TTL_HOURS, description="Rows older than this "
                                  "before the event are not used")
    ttl_days: int | None = Field(default=None, gt=0, le=3660, description="Same as ttl_hours, in days")
    columns: list[LookupColumn] = Field(min_length=1, description="Looked-up columns, added to each event")

    @model_validator(mode="after")
    def _consistent(self) -> LookupSpec:
        if self.ttl_hours is not None and self.ttl_days is not None:
            raise ValueError("give `ttl_hours` or `ttl_days`, not both")
        if self.lookup_keys is not None and len(self.lookup_keys) != len(self.keys):
            raise ValueError(
                f"lookup_keys: {len(self.lookup_keys)} lookup key column(s) {self.lookup_keys} for "
                f"{len(self.keys)} event key column(s) {self.keys}; give one lookup column per key"
            )
        return self

    @property
    def source_keys(self) -> list[str]:
        return list(self.lookup_keys or self.keys)

    @property
    def ttl_seconds(self) -> int | None:
        if self.ttl_hours is not None:
            return self.ttl_hours * 3600
        return self.ttl_days * 86400 if self.ttl_days is not None else None

    @property
    def ttl_key(self) -> str:
        return "ttl_hours" if self.ttl_hours is not None else "ttl_days"


class SnapshotLookupColumn(LookupColumn):
    description: str = Field(min_length=1, description="Becomes the column comment, as a feature's description")


class SnapshotLookupSpec(LookupSpec):
    """A lookup keyed by features of the snapshot (`features.lookups`): e.g. the aircraft's newest origin (a
    `latest` aggregate) -> the weather there, as of the end of the snapshot date. Each looked-up column is a
    feature column of the snapshot, hence its description."""

    keys: list[str] = Field(min_length=1, description="Features (or entity key columns) of the snapshot matched "
                            "to the lookup source, in order")
    columns: list[SnapshotLookupColumn] = Field(min_length=1, description="Looked-up columns: snapshot features")


def check_lookups(
    where: str, owner: str, lookups: list[LookupSpec], own: dict[str, str | None],
    sources: dict[str, SourceSpec], seen: dict[str, str],
) -> dict[str, str | None]:
    """Check the `lookups` at YAML key `where` over the columns `own` (name -> type; None: not known at load)
    of `owner` (how messages name them: "the event source 'flights'", "the snapshot's features"); the columns
    the group's features see: `own` and the looked-up ones. `seen`: looked-up names already defined over the
    same columns (-> where)."""
    cols = dict(own)
    for j, lk in enumerate(lookups):
        prefix = f"{where}.lookups[{j}]"
        if lk.source not in sources:
            raise ValueError(f"{prefix}.source: unknown lookup source {lk.source!r}; defined sources: "
                             f"{sorted(sources)}")
        lsrc = sources[lk.source]
        lcols = {c.name: c.type for c in lsrc.columns}
        event_cols = own
        for k, (ev, lc) in enumerate(zip(lk.keys, lk.source_keys, strict=True)):
            if ev not in event_cols:
                raise ValueError(
                    f"{prefix}.keys[{k}]: key column {ev!r} is not a column of {owner}; columns: "
                    f"{sorted(event_cols)}"
                )
            if event_cols[ev] is None:  # an `expr` feature: comparing it to the lookup key could cast silently
                raise ValueError(
                    f"{prefix}.keys[{k}]: the type of {ev!r} is not known at load (an `expr` feature, a sum or mean "
                    f"of a decimal); key the lookup by a feature copied from a column or aggregated from one "
                    f"(`latest`, `max`, ...)"
                )
            named = "lookup_keys" if lk.lookup_keys is not None else "keys"
            if lc not in lcols:
                raise ValueError(
                    f"{prefix}.{named}[{k}]: key column {lc!r} is not a column of the lookup source "
                    f"{lk.source!r}; columns: {sorted(lcols)}"
                )
            if event_cols[ev] != lcols[lc]:
                raise ValueError(
                    f"{prefix}.{named}[{k}]: key {ev!r} ({event_cols[ev]}) of {owner} and {lc!r} "
                    f"({lcols[lc]}) of {lk.source!r} have different types"
                )
        time_column = lk.time_column or lsrc.event_time
        if lk.time_column is not None and lcols.get(lk.time_column) not in ("date", "timestamp"):
            raise ValueError(
                f"{prefix}.time_column: {lk.time_column!r} must be a date or timestamp column of the lookup "
                f"source {lk.source!r} (found {lcols.get(lk.time_column, 'no such column')})"
            )
        if time_column is None and lk.ttl_seconds is not None:
            raise ValueError(
                f"{prefix}.{lk.ttl_key}: lookup source {lk.source!r} has no time column (`event_time: null`, "
                f"a reference table) and a ttl needs one: set `time_column` on this lookup or drop the ttl"
            )
        for k, c in enumerate(lk.columns):
            key = f"{prefix}.columns[{k}] ({c.name})"
            if c.column not in lcols:
                raise ValueError(
                    f"{key}: unknown column {c.column!r} of lookup source {lk.source!r}; columns: {sorted(lcols)}"
                )
            if c.name in event_cols:
                raise ValueError(
                    f"{key}: name {c.name!r} clashes with a column of {owner}; "
                    f"give the looked-up column another `name`"
                )
            if c.name in seen or c.name in LOOKUP_RESERVED:
                also = f" (also defined at {seen[c.name]})" if c.name in seen else " (reserved)"
                raise ValueError(f"{key}: duplicate looked-up column name {c.name!r}{also}")
            seen[c.name] = key
            cols[c.name] = lcols[c.column]
    return cols
