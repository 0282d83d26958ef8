"""`poolpilot doctor` for TaurusDB: the region or endpoint, the endpoint itself, then the credentials.

The signature goes out once, never again (more than 5 failures lock the key for 5 minutes); when it is rejected,
the server's `Date` header tells how far this machine's clock is off.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from poolpilot.server.kernel.probe import Answer, check, get, skew
from poolpilot.server.kernel.provider import Check
from poolpilot.tools.taurusdb.settings import TaurusDBSettings

__all__ = ["probe"]

_MAX_SKEW_S = 900  # Huawei's gateway rejects X-Sdk-Date more than 15 minutes off


def _region(settings: TaurusDBSettings) -> tuple[Check, str | None]:
    from poolpilot.tools.taurusdb.regions import REGIONS, endpoint_for

    region, url = settings.region, settings.url
    name = "taurusdb region"
    if url is None:
        if region not in REGIONS:
            return check(name, "fail", "no region", "set HUAWEICLOUD_SDK_REGION"), None
        return check(name, "ok", f"{region} -> {endpoint_for(region)}"), endpoint_for(region)
    labels = (urlsplit(url).hostname or "").split(".")
    named = [r for r in REGIONS if r in labels]
    if region is not None and named and region not in named:
        detail = f"POOLPILOT_TAURUSDB_URL points at {named[0]} but HUAWEICLOUD_SDK_REGION is {region}"
        return check(name, "fail", detail, "make them agree, or unset POOLPILOT_TAURUSDB_URL"), url
    note = f"region {region}" if region else "no region set"
    return check(name, "ok", f"custom endpoint {url} ({note})"), url


def _minutes(offset: float) -> str:
    return f"{round(abs(offset) / 60)} minutes {'behind' if offset > 0 else 'ahead of'} the server's"


async def probe(settings: TaurusDBSettings, timeout_s: float) -> list[Check]:
    from poolpilot.tools.taurusdb.signer import canonical_query, sign_request

    region_check, base = _region(settings)
    if base is None:
        return [region_check]
    project = settings.project_id or ""
    path = f"/v3/{project}/instances"
    query = [("limit", 1)]
    netloc = urlsplit(base).netloc
    headers = {"Host": netloc, "Content-Type": "application/json", "X-Project-Id": project}
    if settings.iam_token:
        headers["X-Auth-Token"] = settings.iam_token
    else:
        ak, sk = settings.ak or "", settings.sk or ""
        if settings.security_token:  # temporary credentials: the token is sent and signed
            headers["X-Security-Token"] = settings.security_token
        headers.update(sign_request("GET", netloc, path, query, headers, None, ak=ak, sk=sk))
    url = f"{base.rstrip('/')}{path}?{canonical_query(query)}"
    endpoint, answer = await get(url, headers, timeout_s, "POOLPILOT_TAURUSDB_URL/HUAWEICLOUD_SDK_REGION", "taurusdb")
    return [region_check, endpoint] + ([] if answer is None else [_credentials(settings, answer)])


def _credentials(settings: TaurusDBSettings, answer: Answer) -> Check:
    name = "taurusdb credentials"
    offset = skew(answer)
    vars_ = "POOLPILOT_TAURUSDB_IAM_TOKEN" if settings.iam_token else "HUAWEICLOUD_SDK_AK/SK"
    if answer.status == 200:
        if offset is not None and abs(offset) > _MAX_SKEW_S / 3:
            detail = f"{vars_} accepted, but this machine's clock is {_minutes(offset)} (signing fails beyond 15)"
            return check(name, "warn", detail, "sync the clock (e.g. `timedatectl set-ntp true`)")
        return check(name, "ok", f"{vars_} accepted (list instances answered)")
    if answer.status == 401:
        if offset is not None and abs(offset) > _MAX_SKEW_S and not settings.iam_token:
            detail = f"signature rejected: this machine's clock is {_minutes(offset)}; signing fails beyond 15"
            fix = "sync the clock (e.g. `timedatectl set-ntp true`), then run doctor once; do not retry in a loop"
            return check(name, "fail", detail, fix)
        detail = f"TaurusDB rejected {vars_} (401)"
        fix = f"check {vars_}; more than 5 failed signatures lock the key for 5 minutes, so fix before retrying"
        return check(name, "fail", detail, fix)
    if answer.status == 403:
        detail = f"project {settings.project_id} is not the credentials' project in this region (403)"
        fix = "copy the project id of this region (console: My Credentials > Projects) to HUAWEICLOUD_SDK_PROJECT_ID"
        return check(name, "fail", detail, fix)
    if answer.status == 404:
        return check(name, "fail", "no TaurusDB API there (404)", "check HUAWEICLOUD_SDK_REGION/POOLPILOT_TAURUSDB_URL")
    return check(name, "warn", f"list instances answered HTTP {answer.status}", "run doctor later")
