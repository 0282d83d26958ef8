"""Settings: flags win over POOLPILOT_* variables, backends per provider, one-line errors for what cannot work."""

from __future__ import annotations

import pytest

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.app import load_settings
from poolpilot.tools.digitalocean.settings import of as do_of
from poolpilot.tools.pgbouncer.settings import of as pgb_of

PROJECT = "054e292c9880d4992f02c0196d3ea468"


def test_auto_backend_is_sandbox_without_credentials() -> None:
    s = load_settings({}, {})
    assert s.provider_backend("digitalocean") == "sandbox"
    assert s.provider_backend("taurusdb") == "sandbox"


def test_auto_backend_is_live_per_provider_with_credentials() -> None:
    s = load_settings({}, {"DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_x"})
    assert s.provider_backend("digitalocean") == "live"
    assert do_of(s).token_var == "DIGITALOCEAN_ACCESS_TOKEN"
    assert s.provider_backend("taurusdb") == "sandbox"


def test_flag_wins_over_environment_and_sources_say_so() -> None:
    s = load_settings({"confirm": "token"}, {"POOLPILOT_CONFIRM": "off"})
    assert s.confirm == "token"
    assert s.sources["confirm"] == "flag"
    s = load_settings({}, {"POOLPILOT_CONFIRM": "off"})
    assert s.confirm == "off" and s.sources["confirm"] == "env POOLPILOT_CONFIRM"


@pytest.mark.parametrize(
    ("flags", "env", "setting"),
    [
        ({"confirm": "maybe"}, {}, "--confirm"),
        ({}, {"POOLPILOT_CONFIRM_SECRET": "short"}, "POOLPILOT_CONFIRM_SECRET"),
        ({}, {"HUAWEICLOUD_SDK_AK": "ak"}, "HUAWEICLOUD_SDK_SK"),
        ({}, {"HUAWEICLOUD_SDK_PROJECT_ID": "nope"}, "HUAWEICLOUD_SDK_PROJECT_ID"),
        ({}, {"HUAWEICLOUD_SDK_REGION": "mars-1"}, "HUAWEICLOUD_SDK_REGION"),
        ({"transport": "streamable-http", "host": "0.0.0.0"}, {}, "--host"),
        ({"backend": "live"}, {}, "--backend live"),
        ({}, {"POOLPILOT_READ_ONLY": "perhaps"}, "POOLPILOT_READ_ONLY"),
        ({"port": "99999"}, {}, "--port"),
    ],
)
def test_unworkable_settings_name_the_setting_and_the_fix(
    flags: dict[str, object], env: dict[str, str], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, env)
    assert caught.value.setting == setting
    assert "Fix:" in str(caught.value)


def test_off_loopback_bind_is_allowed_with_a_token() -> None:
    s = load_settings({"transport": "streamable-http", "host": "0.0.0.0"}, {"POOLPILOT_AUTH_TOKEN": "t" * 32})
    assert s.auth_token == "t" * 32


def test_pgbouncer_instances_come_from_named_variables() -> None:
    env = {
        "POOLPILOT_PGBOUNCER_EDGE_EU_DSN": "postgresql://admin:pw-secret@127.0.0.1:6432/pgbouncer",
        "POOLPILOT_PGBOUNCER_EDGE_EU_INI": "/etc/pgbouncer/pgbouncer.ini",
    }
    s = load_settings({}, env)
    assert [(i.name, i.ini_path) for i in pgb_of(s).instances] == [("edge-eu", "/etc/pgbouncer/pgbouncer.ini")]
    assert "pw-secret" in s.secrets()


def test_taurusdb_live_needs_project_and_region() -> None:
    env = {"HUAWEICLOUD_SDK_AK": "ak", "HUAWEICLOUD_SDK_SK": "sk"}
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env)
    assert caught.value.setting == "HUAWEICLOUD_SDK_PROJECT_ID"
    s = load_settings({}, {**env, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT, "HUAWEICLOUD_SDK_REGION": "cn-north-4"})
    assert s.provider_backend("taurusdb") == "live"
