"""Uniform rows across providers, and the findings the advice rules produce."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from poolpilot.server.kernel.errors import ErrorInfo

__all__ = ["Advice", "Budget", "Finding", "Overview", "OverviewRow", "ProviderFailure", "SuggestedCall"]

Provider = Literal["digitalocean", "taurusdb", "pgbouncer"]
Scalar = str | int | float | bool | None


class Budget(BaseModel):
    """A DigitalOcean cluster's connection budget: the same fields as digitalocean_list_pools."""

    max: int | None = None  # null when the size slug carries no RAM (the API then decides)
    allocated: int
    available: int | None = None


class OverviewRow(BaseModel):
    provider: Provider
    location: str = Field(description="DO cluster id, TaurusDB instance id, or PgBouncer instance name")
    location_name: str | None = None
    pool: str = Field(description="pool name, TaurusDB proxy id, or PgBouncer database")
    pool_label: str | None = Field(default=None, description="proxy name or database/user")
    mode: str | None = Field(default=None, description="pool mode, or the TaurusDB pool type")
    size: int | None = None
    backend: str
    budget: Budget | None = None
    db: str | None = None
    user: str | None = None
    db_exists: bool | None = None
    user_exists: bool | None = None
    switchable: bool | None = None
    clients_waiting: int | None = None
    max_wait_s: float | None = None
    saturation: str | None = None
    server_limit: int | None = Field(default=None, description="PgBouncer max_db_connections when set")


class ProviderFailure(BaseModel):
    provider: Provider
    location: str | None = None
    error: ErrorInfo


class Overview(BaseModel):
    backend: str = Field(default="mixed", description="sandbox, live, or mixed across providers")
    rows: list[OverviewRow]
    errors: list[ProviderFailure] = Field(default_factory=list)


class SuggestedCall(BaseModel):
    tool: str
    arguments: dict[str, str | int | bool]


class Finding(BaseModel):
    rule: str
    severity: Literal["info", "warning", "critical"]
    provider: Provider
    location: str
    pool: str | None = None
    evidence: dict[str, Scalar]
    explanation: str
    suggested_call: SuggestedCall | None = None


class Advice(BaseModel):
    backend: str = "mixed"
    findings: list[Finding]
    errors: list[ProviderFailure] = Field(default_factory=list)
    thresholds: dict[str, float]
