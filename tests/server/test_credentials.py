"""Credentials users already have: DIGITALOCEAN_API_TOKEN, and Huawei temporary credentials (security token)."""

from __future__ import annotations

import pytest

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.app import load_settings
from poolpilot.tools.digitalocean.settings import of as do_of
from poolpilot.tools.taurusdb.settings import of as tdb_of

PROJECT = "054e292c9880d4992f02c0196d3ea468"
TAURUS = {"HUAWEICLOUD_SDK_AK": "AK0123", "HUAWEICLOUD_SDK_SK": "SK0123456789", "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT}


def test_digitalocean_api_token_alone_makes_digitalocean_live() -> None:
    s = load_settings({}, {"DIGITALOCEAN_API_TOKEN": "dop_v1_api"})
    assert s.provider_backend("digitalocean") == "live" and do_of(s).token == "dop_v1_api"
    assert do_of(s).token_var == "DIGITALOCEAN_API_TOKEN"
    assert s.sources["digitalocean_token"] == "env DIGITALOCEAN_API_TOKEN"


@pytest.mark.parametrize(
    ("env", "winner"),
    [
        ({"DIGITALOCEAN_TOKEN": "t1", "DIGITALOCEAN_ACCESS_TOKEN": "t2", "DIGITALOCEAN_API_TOKEN": "t3"}, "t1"),
        ({"DIGITALOCEAN_ACCESS_TOKEN": "t2", "DIGITALOCEAN_API_TOKEN": "t3"}, "t2"),
        ({"DIGITALOCEAN_TOKEN": "", "DIGITALOCEAN_API_TOKEN": "t3"}, "t3"),
    ],
)
def test_digitalocean_token_precedence_is_token_then_access_token_then_api_token(
    env: dict[str, str], winner: str
) -> None:
    assert do_of(load_settings({}, env)).token == winner


def test_a_malformed_digitalocean_api_token_names_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"DIGITALOCEAN_API_TOKEN": "dop v1\n"})
    assert caught.value.setting == "DIGITALOCEAN_API_TOKEN" and "dop v1" not in str(caught.value)


def test_huawei_security_token_is_read_and_treated_as_a_secret() -> None:
    s = load_settings(
        {}, {**TAURUS, "HUAWEICLOUD_SDK_REGION": "cn-north-4", "HUAWEICLOUD_SDK_SECURITY_TOKEN": "st-xyz"}
    )
    assert tdb_of(s).security_token == "st-xyz" and "st-xyz" in s.secrets()
    assert "st-xyz" not in repr(s) and "st-xyz" not in repr(tdb_of(s))
    assert s.sources["HUAWEICLOUD_SDK_SECURITY_TOKEN"] == "env HUAWEICLOUD_SDK_SECURITY_TOKEN"


def test_huawei_security_token_without_an_access_key_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"HUAWEICLOUD_SDK_SECURITY_TOKEN": "st-xyz"})
    assert caught.value.setting == "HUAWEICLOUD_SDK_SECURITY_TOKEN" and "st-xyz" not in str(caught.value)


def test_a_malformed_huawei_security_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {**TAURUS, "HUAWEICLOUD_SDK_SECURITY_TOKEN": "st xyz"})
    assert caught.value.setting == "HUAWEICLOUD_SDK_SECURITY_TOKEN" and "st xyz" not in str(caught.value)
