"""The SHOW results the admin console's client reads, by capability rather than version string (admin.py).

Each row model names the columns it needs (and the other names a column has had); the columns come from the
result's description, and anything else is left out. A missing required column, or a value of another type, is
`AdminColumnError` naming the column, never the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from psycopg.rows import DictRow

__all__ = ["AdminColumnError", "AdminError", "Row", "ShowDatabasesRow", "ShowPoolsRow", "ShowStatsRow"]


class AdminError(Exception):
    """Base of the admin console errors."""


class AdminColumnError(AdminError):
    """A SHOW result lacks a column we read, or a column holds a value of another type than expected."""

    def __init__(self, command: str, column: str, problem: str | None = None) -> None:
        said = f"column {column} {problem}" if problem else f"no column {column}"
        super().__init__(f"{command} returned {said}")
        self.command, self.column = command, column


RowT = TypeVar("RowT", bound="Row")


class Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # `from_rows` passes only the columns it maps

    # field -> the names its column has had, newest first (for a field whose column was renamed)
    renamed: ClassVar[dict[str, tuple[str, ...]]] = {}

    @classmethod
    def columns_for(cls, command: str, columns: Sequence[str]) -> dict[str, str]:
        """Map each field to the column that holds it in a result with `columns`. A missing column of a required
        field raises `AdminColumnError` naming it; a missing optional one is left to its default."""
        present, found = set(columns), {}
        for name, info in cls.model_fields.items():
            names = cls.renamed.get(name, (name,))
            column = next((c for c in names if c in present), None)
            if column is not None:
                found[name] = column
            elif info.is_required():
                raise AdminColumnError(command, " or ".join(names))
        return found

    @classmethod
    def from_rows(cls: type[RowT], command: str, columns: Sequence[str], rows: list[DictRow]) -> list[RowT]:
        mapping = cls.columns_for(command, columns)
        try:
            return [cls.model_validate({name: row[column] for name, column in mapping.items()}) for row in rows]
        except ValidationError as exc:
            # Name the column and the expected type, never the value (a host or user the model needn't see).
            error = exc.errors(include_url=False, include_input=False)[0]
            column = mapping.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "?"
            raise AdminColumnError(command, column, f"has an unexpected value ({error['msg']})") from None


class ShowPoolsRow(Row):
    """One row of SHOW POOLS: one pool per database/user pair."""

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    sv_tested: int
    sv_login: int
    maxwait: int  # seconds part of the oldest waiting client's wait
    maxwait_us: int  # microseconds part
    pool_mode: str | None = None

    @property
    def max_wait_s(self) -> float:
        return self.maxwait + self.maxwait_us / 1_000_000


class ShowDatabasesRow(Row):
    """One row of SHOW DATABASES: what PgBouncer actually loaded for a `[databases]` entry."""

    name: str
    host: str | None
    port: int
    database: str
    force_user: str | None
    pool_size: int
    min_pool_size: int = 0
    reserve_pool: int  # column `reserve_pool_size` since 1.24.0
    pool_mode: str | None  # None: the global pool_mode applies
    max_connections: int
    current_connections: int
    paused: bool
    disabled: bool

    renamed: ClassVar[dict[str, tuple[str, ...]]] = {"reserve_pool": ("reserve_pool_size", "reserve_pool")}


class ShowStatsRow(Row):
    """One row of SHOW STATS: totals since start and per-second averages over the last stats period."""

    database: str
    total_xact_count: int
    total_query_count: int
    total_received: int
    total_sent: int
    total_xact_time: int  # microseconds
    total_query_time: int
    total_wait_time: int
    avg_xact_count: int  # per second
    avg_query_count: int
    avg_recv: int
    avg_sent: int
    avg_xact_time: int  # microseconds
    avg_query_time: int
    avg_wait_time: int
