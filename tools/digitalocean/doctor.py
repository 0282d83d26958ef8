"""`poolpilot doctor` for DigitalOcean: the endpoint, then whether the token is accepted (list clusters, one page)."""

from __future__ import annotations

from poolpilot.server.kernel.probe import check, get
from poolpilot.server.kernel.provider import Check
from poolpilot.tools.digitalocean.settings import DigitalOceanSettings

__all__ = ["probe"]

_TOKEN_PAGE = "https://cloud.digitalocean.com/account/api/tokens"


async def probe(settings: DigitalOceanSettings, timeout_s: float) -> list[Check]:
    var = settings.token_var
    url = f"{settings.url}/v2/databases?per_page=1"
    headers = {"Authorization": f"Bearer {settings.token}", "Accept": "application/json"}
    endpoint, answer = await get(url, headers, timeout_s, "POOLPILOT_DIGITALOCEAN_URL", "digitalocean")
    if answer is None:
        return [endpoint]
    name = "digitalocean credentials"
    if answer.status == 200:
        verdict = check(name, "ok", f"{var} accepted (list clusters answered)")
    elif answer.status == 401:
        fix = f"set {var} to a valid token ({_TOKEN_PAGE}) with database:read at least"
        verdict = check(name, "fail", f"DigitalOcean rejected the token in {var} (401)", fix)
    elif answer.status == 403:
        fix = f"create a token with the database scopes at {_TOKEN_PAGE} and put it in {var}"
        verdict = check(name, "fail", f"the token in {var} lacks database:read (403)", fix)
    elif answer.status == 429:
        verdict = check(name, "warn", "rate limited (429)", "wait a minute and run doctor again")
    else:
        detail = f"list clusters answered HTTP {answer.status}"
        verdict = check(name, "fail", detail, "check POOLPILOT_DIGITALOCEAN_URL")
    return [endpoint, verdict]
