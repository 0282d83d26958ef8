"""DigitalOcean's settings: the API token (the variables DigitalOcean's own tools read) and the API base URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from poolpilot.server.kernel.config import PRINTABLE, Settings, SettingsReader, check_shape
from poolpilot.server.kernel.provider import Backend

__all__ = ["DEFAULT_URL", "TOKEN_VARS", "DigitalOceanSettings", "of", "read"]

PROVIDER = "digitalocean"
DEFAULT_URL = "https://api.digitalocean.com"
# Precedence: doctl's and Terraform's name first, then pydo's examples', then what DigitalOcean's MCP server reads.
TOKEN_VARS = ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_API_TOKEN")


@dataclass(frozen=True)
class DigitalOceanSettings:
    token: str | None = field(default=None, repr=False)
    token_var: str = TOKEN_VARS[0]
    url: str = DEFAULT_URL

    def configured(self) -> bool:
        return bool(self.token)

    def secrets(self) -> list[str]:
        return [self.token] if self.token else []

    def status(self, backend: Backend) -> str:
        if backend == "sandbox":
            return f"sandbox (demo data, not production); set {TOKEN_VARS[0]} to use your account"
        source = f"env {self.token_var}" if self.token else "unset"
        return f"live: token from {source}, endpoint {self.url}"

    def validate(self, backend: Backend) -> None:
        return None


def read(r: SettingsReader) -> DigitalOceanSettings:
    token, var = r.secret("digitalocean_token", *TOKEN_VARS)
    check_shape(var, token, PRINTABLE, "has spaces or control characters (a pasted newline?)")
    return DigitalOceanSettings(token=token, token_var=var, url=(r.get("digitalocean_url") or DEFAULT_URL).rstrip("/"))


def of(settings: Settings) -> DigitalOceanSettings:
    """This provider's settings; the defaults when `settings` was built without them (a test's `Settings()`)."""
    return cast(DigitalOceanSettings, settings.providers.get(PROVIDER) or DigitalOceanSettings())
