"""TaurusDB bodies as the API sends them (`Api*`, tolerant: server/kernel/bodies.py) and our tools' results.

Argument aliases follow the API reference's id formats (openapi.yaml), so a bad id is refused, with the field
named, before any request: project 32 letters/digits, instance 32 + `in07`, proxy 32 + `po01`.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, Field

from poolpilot.server.kernel.bodies import ProviderBody, parse_body
from poolpilot.server.kernel.guard import GuardedResult

__all__ = [
    "ApiInstance",
    "ApiJob",
    "ApiProxy",
    "ApiProxyEntry",
    "Cursor",
    "InstanceId",
    "InstanceList",
    "InstanceRow",
    "Job",
    "JobId",
    "JobResult",
    "JobStatus",
    "PageSize",
    "PoolType",
    "PoolTypeChange",
    "ProjectId",
    "ProxyId",
    "ProxyList",
    "ProxyRow",
    "WaitOutcome",
    "job_from",
    "read_body",
]

M = TypeVar("M", bound=BaseModel)

PROJECT_ID_PATTERN = r"^[A-Za-z0-9]{32}$"
ProjectId = Annotated[str, Field(pattern=PROJECT_ID_PATTERN, description="Project id, 32 letters/digits")]
# The pattern says what the id looks like; a description restating it would cost bytes in every tools/list.
InstanceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{32}in07$")]
ProxyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{32}po01$")]
# Job ids are UUIDs in every example, but the reference only says "string": accept what is safe in a query.
JobId = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$", description="job_id returned by the pool-type switch")]
PoolType = Literal["CLOSED", "SESSION"]
JobStatus = Literal["Pending", "Running", "Completed", "Failed"]
WaitOutcome = Literal["finished", "timed_out", "poll_failed", "not_waited"]
PageSize = Annotated[int, Field(strict=True, ge=1, le=100, description="Rows per page")]
Cursor = Annotated[str | None, Field(pattern=r"^[0-9]{1,6}$", description="next_cursor of the previous page")]


# -- provider bodies --------------------------------------------------------------------------------


# Status and type fields are plain strings: an unknown value passes through verbatim (the job status, a closed set
# in our results, is the exception: see `job_from`). Job `created`/`ended`/`process` are documented as empty at
# creation and may come as null: null is the default.
_Api = ProviderBody


class ApiDatastore(_Api):
    type: str = ""
    version: str = ""
    kernel_version: str = ""


class ApiInstance(_Api):
    id: str
    name: str = ""
    status: str = ""
    region: str = ""
    type: str = ""
    port: str = ""
    datastore: ApiDatastore | None = None
    proxy_ips: list[str] | None = None


class ApiProxy(_Api):
    pool_id: str
    name: str = ""
    status: str = ""
    type: str = ""
    node_num: int | None = None
    nodes: list[dict[str, object]] | None = None
    connection_pool_type: str = ""
    switch_connection_pool_type_enabled: bool | None = None
    consistence_mode: str = ""


class ApiProxyEntry(_Api):
    proxy: ApiProxy
    htap_nodes: list[dict[str, object]] | None = None


class ApiJobInstance(_Api):
    id: str = ""
    name: str = ""


class ApiJob(_Api):
    id: str
    name: str = ""
    status: str = ""
    created: str = ""
    ended: str = ""
    process: str = ""
    instance: ApiJobInstance | None = None
    fail_reason: str = ""


def read_body(model: type[M], data: object, what: str) -> M:
    """A TaurusDB body as `model`; one that cannot be read is a clean `upstream_error` (server/kernel/bodies.py)."""
    hint = "Retry in a minute; if it persists, TaurusDB's API changed shape: report it."
    return parse_body(model, data, provider="taurusdb", label="TaurusDB", what=what, hint=hint)


# -- results ----------------------------------------------------------------------------------------


class InstanceRow(BaseModel):
    id: str
    name: str
    status: str
    region: str
    version: str | None = Field(default=None, description="MySQL-compatible version")
    kernel_version: str | None = None


class InstanceList(BaseModel):
    backend: str
    rows: list[InstanceRow]
    total: int
    next_cursor: str | None = None


class ProxyRow(BaseModel):
    proxy_id: str
    name: str
    status: str
    pool_type: str = Field(description="Current connection-pool type: CLOSED or SESSION")
    switchable: bool = Field(description="Whether the pool type can be switched now")
    why_not: str | None = Field(default=None, description="Why switching is not possible")
    node_count: int


class ProxyList(BaseModel):
    backend: str
    instance_id: str
    rows: list[ProxyRow]


class Job(BaseModel):
    job_id: str
    status: JobStatus
    progress: int | None = Field(default=None, description="Percent done while Running")
    fail_reason: str | None = None
    created: str | None = None
    ended: str | None = None
    provider_status: str | None = Field(default=None, description="TaurusDB's status when it is none of the four")


class JobResult(BaseModel):
    backend: str
    job: Job


class PoolTypeChange(GuardedResult):
    instance_id: str
    proxy_id: str
    proxy_name: str
    before: str = Field(description="Pool type when the call started")
    after: PoolType = Field(description="Requested pool type")
    job: Job | None = None
    wait_outcome: WaitOutcome | None = None
    pool_type_now: str | None = Field(default=None, description="Pool type read back after the job finished")


_STATUSES: tuple[JobStatus, ...] = ("Pending", "Running", "Completed", "Failed")
_KNOWN = frozenset(status.lower() for status in _STATUSES)


def _status(raw: str) -> JobStatus:
    for known in _STATUSES:
        if raw.lower() == known.lower():
            return known
    # A status the reference does not list is neither success nor failure: treat it as still in progress, so
    # the caller keeps polling (bounded by its timeout) rather than reporting an outcome that did not happen.
    return "Running"


def _percent(process: str) -> int | None:
    digits = process.strip().rstrip("%").strip()
    # ASCII only: "²".isdigit() is true, yet int("²") raises.
    return max(0, min(100, int(digits))) if digits.isascii() and digits.isdigit() else None


def job_from(api: ApiJob, job_id: str) -> Job:
    """Our view of a job; `job_id` is the id asked for (a body naming another job does not change which one)."""
    status = _status(api.status)
    return Job(
        job_id=job_id,
        status=status,
        progress=100 if status == "Completed" else _percent(api.process),
        fail_reason=(api.fail_reason or None) if status == "Failed" else None,
        created=api.created or None,
        ended=api.ended or None,
        provider_status=None if not api.status or api.status.lower() in _KNOWN else api.status[:80],
    )
