"""TaurusDB's settings: Huawei Cloud credentials (the SDK's own variables), project, region or endpoint, language."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast

from poolpilot.server.kernel.config import ALNUM, PRINTABLE, ConfigError, Settings, SettingsReader, check_shape, choice
from poolpilot.server.kernel.provider import Backend

__all__ = ["TaurusDBSettings", "of", "read"]

PROVIDER = "taurusdb"


@dataclass(frozen=True)
class TaurusDBSettings:
    ak: str | None = field(default=None, repr=False)
    sk: str | None = field(default=None, repr=False)
    project_id: str | None = None
    region: str | None = None
    url: str | None = None
    iam_token: str | None = field(default=None, repr=False)
    language: Literal["en-us", "zh-cn"] = "en-us"
    # Temporary credentials: sent as X-Security-Token beside the AK/SK signature, and signed with it.
    security_token: str | None = field(default=None, repr=False)

    def configured(self) -> bool:
        return bool(self.iam_token) or bool(self.ak and self.sk)

    def secrets(self) -> list[str]:
        return [v for v in (self.sk, self.ak, self.iam_token, self.security_token) if v]

    def status(self, backend: Backend) -> str:
        if backend == "sandbox":
            return "sandbox (demo data, not production); set HUAWEICLOUD_SDK_AK/SK to use your account"
        how = "IAM token" if self.iam_token else "AK/SK from env HUAWEICLOUD_SDK_AK/SK"
        how += " with HUAWEICLOUD_SDK_SECURITY_TOKEN" if self.security_token and not self.iam_token else ""
        return f"live: {how}, {self.url or f'region {self.region}'}"

    def validate(self, backend: Backend) -> None:
        if backend != "live":
            return
        if self.ak and not self.project_id:
            raise ConfigError(
                "HUAWEICLOUD_SDK_PROJECT_ID", "is not set", "set the 32-character project id of the region"
            )
        if not (self.region or self.url):
            raise ConfigError("HUAWEICLOUD_SDK_REGION", "is not set", "set a region such as cn-north-4")


def read(r: SettingsReader) -> TaurusDBSettings:
    ak, _ = r.secret("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_AK")
    sk, _ = r.secret("HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SK")
    project = r.env.get("HUAWEICLOUD_SDK_PROJECT_ID") or None
    r.sources["HUAWEICLOUD_SDK_PROJECT_ID"] = "env HUAWEICLOUD_SDK_PROJECT_ID" if project else "unset"
    r.shown["HUAWEICLOUD_SDK_PROJECT_ID"] = project or ""
    iam_token, _ = r.secret("taurusdb_iam_token", "POOLPILOT_TAURUSDB_IAM_TOKEN")
    check_shape("HUAWEICLOUD_SDK_AK", ak, ALNUM, "must be letters and digits only (an access key id)")
    check_shape("HUAWEICLOUD_SDK_SK", sk, ALNUM, "must be letters and digits only (a secret access key)")
    check_shape("POOLPILOT_TAURUSDB_IAM_TOKEN", iam_token, PRINTABLE, "is malformed")
    security_token, _ = r.secret("HUAWEICLOUD_SDK_SECURITY_TOKEN", "HUAWEICLOUD_SDK_SECURITY_TOKEN")
    check_shape("HUAWEICLOUD_SDK_SECURITY_TOKEN", security_token, PRINTABLE, "is malformed")
    if security_token and not ak:
        raise ConfigError("HUAWEICLOUD_SDK_SECURITY_TOKEN", "is set without an AK/SK", "set its temporary AK/SK too")
    if project is not None and not re.fullmatch(r"[A-Za-z0-9]{32}", project):
        raise ConfigError("HUAWEICLOUD_SDK_PROJECT_ID", "must be 32 letters or digits", "copy it from the console")
    if bool(ak) != bool(sk):
        missing = "HUAWEICLOUD_SDK_SK" if ak else "HUAWEICLOUD_SDK_AK"
        raise ConfigError(missing, "is not set while its pair is", "set both HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK")
    region = r.get("region", "HUAWEICLOUD_SDK_REGION")
    url = r.get("taurusdb_url")
    language = choice(r.get("taurusdb_language"), "POOLPILOT_TAURUSDB_LANGUAGE", ("en-us", "zh-cn"), "en-us")
    if region is not None:
        from poolpilot.tools.taurusdb.regions import REGIONS  # only when a region is set: keeps start-up lean

        if region not in REGIONS and not url:
            raise ConfigError(
                "HUAWEICLOUD_SDK_REGION", f"{region!r} is not in the region table", "use one of " + ", ".join(REGIONS)
            )
    return TaurusDBSettings(
        ak=ak,
        sk=sk,
        project_id=project,
        region=region,
        url=url.rstrip("/") if url else None,
        iam_token=iam_token,
        language=language,  # type: ignore[arg-type]
        security_token=security_token,
    )


def of(settings: Settings) -> TaurusDBSettings:
    """This provider's settings; the defaults when `settings` was built without them (a test's `Settings()`)."""
    return cast(TaurusDBSettings, settings.providers.get(PROVIDER) or TaurusDBSettings())
