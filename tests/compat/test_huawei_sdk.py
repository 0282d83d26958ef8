"""Huawei Cloud's own SDK, huaweicloudsdkgaussdb 3.1.219, against the sandbox on a real port (CLIENTS.md).

The SDK signs every request with AK/SK (SDK-HMAC-SHA256 over its whole User-Agent), so a call that succeeds
also proves the sandbox verifies signatures the way the real gateway does. It is imported inside the tests,
after HOME points at a temporary directory: its first client writes ~/.huaweicloud/application_id.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from poolpilot.tools.taurusdb.sandbox_seed import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    LATEST_PROXY_VERSION,
    PROXY_OLD_KERNEL,
    PROXY_SWITCHABLE,
    SANDBOX_AK,
    SANDBOX_PROJECT_ID,
    SANDBOX_SK,
)
from tests.support import Sandbox, Serve

# The SDK marks the instance-list method deprecated; it is still the documented call, and the one poolpilot models.
pytestmark = pytest.mark.filterwarnings("ignore:Method 'list_gauss_my_sql_instances':DeprecationWarning")

JOB_DEADLINE_S = 5.0
JOB_POLL_S = 0.05


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `huaweicloudsdkgaussdb.v3` module, imported with HOME in a temporary directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    first_time = "huaweicloudsdkcore.http.user_agent" not in sys.modules
    import huaweicloudsdkgaussdb.v3

    if first_time:
        assert (tmp_path / ".huaweicloud" / "application_id").is_file()  # written here, not in the real HOME
    return huaweicloudsdkgaussdb.v3


def _client(sdk: Any, base: str, *, sk: str = SANDBOX_SK, security_token: str | None = None) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig

    config = HttpConfig.get_default_config()
    config.retry_times = 0
    config.timeout = (5, 10)  # (connect, read) seconds
    credentials = BasicCredentials(SANDBOX_AK, sk, SANDBOX_PROJECT_ID)
    if security_token is not None:
        credentials = credentials.with_security_token(security_token)
    builder = sdk.GaussDBClient.new_builder().with_http_config(config).with_credentials(credentials)
    return builder.with_endpoints([base]).build()


def _request_error() -> type[BaseException]:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

    error: type[BaseException] = ClientRequestException
    return error


def _proxy_types(sdk: Any, client: Any, instance_id: str) -> dict[str, str]:
    request = sdk.ShowGaussMySqlProxyListRequest(instance_id=instance_id, limit=100, offset=0)
    response = client.show_gauss_my_sql_proxy_list(request)
    assert response.status_code == 200
    return {item.proxy.pool_id: item.proxy.connection_pool_type for item in response.proxy_list}


def _set_session(sdk: Any, client: Any, instance_id: str, proxy_id: str) -> Any:
    body = sdk.ProxyUpdateProxyConnectionPoolTypeRequest(connection_pool_type="SESSION")
    request = sdk.UpdateProxyConnectionPoolTypeRequest(instance_id=instance_id, proxy_id=proxy_id, body=body)
    return client.update_proxy_connection_pool_type(request)


def _wait_for_job(sdk: Any, client: Any, job_id: str) -> Any:
    seen: list[str] = []
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:  # real time, bounded: the sandbox's jobs here take 0.2-0.5 s
        job = client.show_gauss_my_sql_job_info(sdk.ShowGaussMySqlJobInfoRequest(id=job_id)).job
        seen.append(job.status)
        if job.status == "Completed":
            return job
        assert job.status in ("Pending", "Running"), seen
        assert time.monotonic() < deadline, f"job still {job.status} after {JOB_DEADLINE_S} s: {seen}"
        time.sleep(JOB_POLL_S)


def _list_instances(sdk: Any, client: Any) -> Any:
    return client.list_gauss_my_sql_instances(sdk.ListGaussMySqlInstancesRequest(limit=100, offset=0))


def test_huawei_sdk_lists_instances(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox()))

    response = _list_instances(sdk, client)

    assert response.status_code == 200
    assert response.total_count == 2
    assert {i.id for i in response.instances} == {INSTANCE_PROD, INSTANCE_ANALYTICS}
    assert all(i.status == "ACTIVE" for i in response.instances)


def test_huawei_sdk_with_temporary_credentials_signs_the_security_token(sdk: Any, serve: Serve) -> None:
    sandbox = Sandbox()
    client = _client(sdk, serve(sandbox), security_token="sts-temporary-token-0123")

    assert _list_instances(sdk, client).status_code == 200
    assert sandbox.taurusdb.security_tokens == ["sts-temporary-token-0123"]  # arrived signed, as ours does


def test_huawei_sdk_lists_proxies_by_pool_id(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox()))

    prod = _proxy_types(sdk, client, INSTANCE_PROD)
    analytics = _proxy_types(sdk, client, INSTANCE_ANALYTICS)

    assert prod[PROXY_SWITCHABLE] == "CLOSED"
    assert PROXY_OLD_KERNEL in analytics


def test_huawei_sdk_sets_session_and_the_job_completes(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox(job_seconds=(0.2, 0.5))))
    assert _proxy_types(sdk, client, INSTANCE_PROD)[PROXY_SWITCHABLE] == "CLOSED"

    started = _set_session(sdk, client, INSTANCE_PROD, PROXY_SWITCHABLE)
    assert started.status_code == 200 and started.job_id

    seen: list[str] = []
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:  # real time, bounded: the job takes 0.2-0.5 s
        job = client.show_gauss_my_sql_job_info(sdk.ShowGaussMySqlJobInfoRequest(id=started.job_id)).job
        seen.append(job.status)
        if job.status == "Completed":
            break
        assert job.status in ("Pending", "Running"), seen
        assert time.monotonic() < deadline, f"job still {job.status} after {JOB_DEADLINE_S} s: {seen}"
        time.sleep(JOB_POLL_S)

    assert job.name == "ModifyProxyConnectionPoolType"
    assert INSTANCE_PROD in str(job.instance)
    assert _proxy_types(sdk, client, INSTANCE_PROD)[PROXY_SWITCHABLE] == "SESSION"


def test_huawei_sdk_old_kernel_proxy_raises_dbs_05000001(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox()))

    with pytest.raises(_request_error()) as raised:
        _set_session(sdk, client, INSTANCE_ANALYTICS, PROXY_OLD_KERNEL)

    error: Any = raised.value
    assert (error.status_code, error.error_code) == (400, "DBS.05000001")
    assert error.request_id  # from the X-Request-Id header: the SDK never reads a body request_id
    assert _proxy_types(sdk, client, INSTANCE_ANALYTICS)[PROXY_OLD_KERNEL] == "CLOSED"


def test_huawei_sdk_bad_secret_key_raises_401_apig_0301(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox()), sk="wrong" + SANDBOX_SK[5:])

    with pytest.raises(_request_error()) as raised:
        _list_instances(sdk, client)

    error: Any = raised.value
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert error.request_id


def test_huawei_sdk_clock_skew_of_20_minutes_is_refused(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox(taurus_clock_skew_s=1200)))

    with pytest.raises(_request_error()) as raised:
        _list_instances(sdk, client)

    error: Any = raised.value
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert "expired" in error.error_msg


def test_huawei_sdk_clock_skew_of_10_minutes_is_accepted(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox(taurus_clock_skew_s=600)))  # within the gateway's ±15 minutes

    assert _list_instances(sdk, client).status_code == 200


# -- proxy administration (toolset taurusdb_proxy_admin) --------------------------------------------


def test_huawei_sdk_upgrades_an_old_kernel_proxy_which_then_switches_to_session(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox(job_seconds=(0.2, 0.5))))
    ids = {"instance_id": INSTANCE_ANALYTICS, "proxy_id": PROXY_OLD_KERNEL}

    version = client.show_proxy_version(sdk.ShowProxyVersionRequest(engine_name="taurusproxy", **ids))
    assert (version.current_version, version.latest_version, version.can_upgrade) == (
        "2.22.05.000",
        LATEST_PROXY_VERSION,
        True,
    )
    assert version.risk.level == 1
    body = sdk.ProxyUpgradeProxyVersionRequest(source_version="2.22.05.000", target_version=LATEST_PROXY_VERSION)
    started = client.upgrade_proxy_version(sdk.UpgradeProxyVersionRequest(body=body, **ids))
    (result,) = started.update_result
    assert result.state == "ACCEPT" and result.instance_id == INSTANCE_ANALYTICS

    assert _wait_for_job(sdk, client, result.workflow_id).name == "UpgradeProxyVersion"
    after = client.show_proxy_version(sdk.ShowProxyVersionRequest(engine_name="taurusproxy", **ids))
    assert (after.current_version, after.can_upgrade) == (LATEST_PROXY_VERSION, False)
    switched = _set_session(sdk, client, INSTANCE_ANALYTICS, PROXY_OLD_KERNEL)  # DBS.05000001 before
    _wait_for_job(sdk, client, switched.job_id)
    assert _proxy_types(sdk, client, INSTANCE_ANALYTICS)[PROXY_OLD_KERNEL] == "SESSION"


def test_huawei_sdk_lists_and_updates_proxy_configurations(sdk: Any, serve: Serve) -> None:
    client = _client(sdk, serve(Sandbox(job_seconds=(0.2, 0.5))))
    ids = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE}

    page = client.show_proxy_configurations(sdk.ShowProxyConfigurationsRequest(limit=2, offset=0, **ids))
    assert page.total_count == 5 and [c.name for c in page.configurations] == [
        "multiStatementType",
        "looseImciApThreshold",
    ]
    item = sdk.UpdateProxyConfigurationItem(name="multiStatementType", value="Loose", elem_type="system")
    body = sdk.UpdateProxyNewConfigRequestBody(configurations=[item])
    started = client.update_proxy_new_configurations(sdk.UpdateProxyNewConfigurationsRequest(body=body, **ids))
    _wait_for_job(sdk, client, started.job_id)
    one = client.show_proxy_configurations(sdk.ShowProxyConfigurationsRequest(name="multiStatementType", **ids))
    assert [c.value for c in one.configurations] == ["Loose"]

    bad = sdk.UpdateProxyConfigurationItem(name="multiStatementType", value="Sloppy", elem_type="system")
    with pytest.raises(_request_error()) as raised:
        client.update_proxy_new_configurations(
            sdk.UpdateProxyNewConfigurationsRequest(body=sdk.UpdateProxyNewConfigRequestBody([bad]), **ids)
        )
    error: Any = raised.value
    assert (error.status_code, error.error_code) == (400, "DBS.200001") and error.request_id


def test_huawei_sdk_updates_proxy_session_consistence(sdk: Any, serve: Serve) -> None:
    sandbox = Sandbox(job_seconds=(0.2, 0.5))
    client = _client(sdk, serve(sandbox))
    body = sdk.ModifyProxyConsistRequest(session_consistence="true", consistence_mode="global")
    request = sdk.UpdateProxySessionConsistenceRequest(instance_id=INSTANCE_PROD, proxy_id=PROXY_SWITCHABLE, body=body)

    _wait_for_job(sdk, client, client.update_proxy_session_consistence(request).job_id)

    listed = client.show_gauss_my_sql_proxy_list(
        sdk.ShowGaussMySqlProxyListRequest(instance_id=INSTANCE_PROD, limit=100, offset=0)
    )
    modes = {item.proxy.pool_id: item.proxy.consistence_mode for item in listed.proxy_list}
    assert modes[PROXY_SWITCHABLE] == "global"
