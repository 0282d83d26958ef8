"""TaurusDB proxy administration: the bodies of ShowProxyVersion, UpgradeProxyVersion and ShowProxyConfigurations
(tolerant, server/kernel/bodies.py; fields of huaweicloudsdkgaussdb 3.1.219's models), the tools' arguments and
their results."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from poolpilot.server.kernel.bodies import ProviderBody
from poolpilot.server.kernel.guard import GuardedResult
from poolpilot.server.kernel.text import HIDDEN_CATEGORIES
from poolpilot.tools.taurusdb.models import Job, WaitOutcome

__all__ = [
    "ApiProxyConfiguration",
    "ApiProxyVersion",
    "ApiUpgradeDetail",
    "ConsistenceMode",
    "ParameterChange",
    "ParameterName",
    "ParameterSetting",
    "ParameterValue",
    "ProxyParameter",
    "ProxyParameterChange",
    "ProxyParameters",
    "ProxyUpgrade",
    "ProxyVersion",
    "SessionConsistencyChange",
    "UpgradeRisk",
    "VersionArg",
]


def _visible(value: str) -> str:
    # Line and paragraph separators, controls and format characters could forge lines in a preview.
    if any(unicodedata.category(ch) in HIDDEN_CATEGORIES for ch in value):
        raise ValueError("contains a control, format or line-separator character")
    return value


# Proxy parameter names are ASCII identifiers (multiStatementType, looseImciApThreshold).
ParameterName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$", description="Parameter name")]
ParameterValue = Annotated[str, Field(max_length=256), AfterValidator(_visible)]
VersionArg = Annotated[
    str | None,
    Field(pattern=r"^[0-9]{1,4}(\.[0-9]{1,6}){1,4}$", description="Target proxy kernel version; default: latest"),
]
ConsistenceMode = Literal["session", "global", "eventual"]


class ParameterSetting(BaseModel):
    """A parameter and its new value."""

    # UpdateProxyNewConfigurations also takes elem_type: the tool sends the one TaurusDB lists for the name.

    model_config = ConfigDict(extra="forbid")
    name: ParameterName
    value: ParameterValue


# -- provider bodies --------------------------------------------------------------------------------


class ApiRisk(ProviderBody):
    level: int | None = None
    suggest: str = ""
    influence: str = ""
    guidance: str = ""
    service_impact_duration: str = ""
    upgrade_duration: str = ""


class ApiProxyVersion(ProviderBody):
    current_version: str = ""
    latest_version: str = ""
    can_upgrade: bool | None = None
    risk: ApiRisk | None = None


class ApiUpgradeDetail(ProviderBody):
    instance_id: str = ""
    workflow_id: str = ""
    state: str = ""
    error_message: str = ""


class ApiProxyConfiguration(ProviderBody):
    name: str
    data_type: str = ""
    elem_type: str = ""
    value_range: str = ""
    value: str = ""
    description: str = ""


# -- results ----------------------------------------------------------------------------------------


class UpgradeRisk(BaseModel):
    level: int | None = None
    suggest: str | None = None
    influence: str | None = None
    guidance: str | None = None
    service_impact_duration: str | None = None
    upgrade_duration: str | None = None


class ProxyVersion(BaseModel):
    backend: str
    instance_id: str
    proxy_id: str
    current_version: str
    latest_version: str
    can_upgrade: bool
    risk: UpgradeRisk | None = Field(default=None, description="TaurusDB's upgrade advice, when it gives one")


class ProxyUpgrade(GuardedResult):
    instance_id: str
    proxy_id: str
    proxy_name: str
    before: str = Field(description="Proxy kernel version when the call started")
    after: str = Field(description="Target version")
    job: Job | None = None
    wait_outcome: WaitOutcome | None = None
    version_now: str | None = Field(default=None, description="Version read back after the job finished")


class ProxyParameter(BaseModel):
    name: str
    value: str
    value_range: str
    data_type: str
    elem_type: str
    description: str


class ProxyParameters(BaseModel):
    backend: str
    instance_id: str
    proxy_id: str
    rows: list[ProxyParameter]
    total: int
    next_cursor: str | None = None


class ParameterChange(BaseModel):
    name: str
    before: str
    after: str


class ProxyParameterChange(GuardedResult):
    instance_id: str
    proxy_id: str
    proxy_name: str
    changes: list[ParameterChange]
    job: Job | None = None
    wait_outcome: WaitOutcome | None = None


class SessionConsistencyChange(GuardedResult):
    instance_id: str
    proxy_id: str
    proxy_name: str
    before: str | None = Field(default=None, description="consistence_mode when the call started")
    after: ConsistenceMode
    mode_now: str | None = Field(default=None, description="consistence_mode read back after the job finished")
    job: Job | None = None
    wait_outcome: WaitOutcome | None = None
