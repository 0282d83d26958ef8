"""The app end to end in process: structured results match their schemas; every failure is one error model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from poolpilot.server.shell.app import build_app
from tests.support import ManualClock, Sandbox, make_app, open_client, sandbox_settings

pytestmark = pytest.mark.anyio

PG_MAIN = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"
ERROR_FIELDS = {"code", "message", "hint", "provider", "provider_code", "http_status", "request_id"}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_results_carry_structured_content_matching_the_output_schema(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
        for tool, args in [
            ("digitalocean_list_clusters", {}),
            ("digitalocean_list_pools", {"cluster_id": PG_MAIN}),
            ("taurusdb_list_instances", {}),
            ("digitalocean_delete_pool", {"cluster_id": PG_MAIN, "pool_name": "reporting"}),
        ]:
            result = await client.call_tool(tool, args)
            assert not result.is_error
            assert result.structured_content is not None
            assert result.structured_content["backend"] == "sandbox"
            jsonschema.validate(result.structured_content, schemas[tool])  # type: ignore[arg-type]


async def test_instructions_and_results_say_which_backend_answers(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        assert client.instructions is not None and "SANDBOX" in client.instructions


async def test_provider_error_becomes_the_error_model(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_get_pool", {"cluster_id": PG_MAIN, "pool_name": "missing"})
    assert result.is_error and result.structured_content is not None
    err = result.structured_content
    assert set(err) | {"provider_code", "request_id"} >= ERROR_FIELDS
    assert (err["code"], err["provider"], err["http_status"], err["provider_code"]) == (
        "not_found",
        "digitalocean",
        404,
        "not_found",
    )
    assert "missing" in err["message"] and err["hint"]
    assert result.content[0].text.startswith("not_found: ")  # type: ignore[union-attr]


async def test_sdk_argument_validation_uses_the_error_model_without_echoing_input(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    secretish = "s3cr3t-value-that-must-not-echo-" + "x" * 40
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_list_pools", {"cluster_id": secretish})
        wrong_type = await client.call_tool("digitalocean_create_pool", {"cluster_id": PG_MAIN, "size": "big"})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == "validation_error"
    assert result.structured_content["field"] == "cluster_id"
    assert secretish not in str(result.content) + str(result.structured_content)
    assert "pydantic.dev" not in str(result.content)
    assert wrong_type.structured_content is not None and wrong_type.structured_content["code"] == "validation_error"
    assert sandbox.requests == 0


class _GarbageSandbox(Sandbox):
    """Answers the cluster list with bodies of the wrong shape, as a broken proxy in front of the API might."""

    body: object = {"databases": [{"id": 5}]}

    async def _respond(self, scope: Any, receive: Any, send: Any) -> Response | None:
        if Request(scope).url.path == "/v2/databases":
            return JSONResponse(self.body)
        return await super()._respond(scope, receive, send)


class _BrokenSandbox(Sandbox):
    """Fails inside the transport with an exception no layer expects: a bug, not a provider answer."""

    async def _respond(self, scope: Any, receive: Any, send: Any) -> Response | None:
        if Request(scope).url.path == "/v2/databases":
            raise RuntimeError("a bug nobody foresaw")
        return await super()._respond(scope, receive, send)


async def test_unexpected_failure_is_an_internal_error_with_an_incident_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    sandbox = _BrokenSandbox(clock=clock, sleep=clock.sleep)
    app = build_app(sandbox_settings(tmp_path / "audit.jsonl"), sandbox=sandbox, clock=clock, sleep=clock.sleep)
    caplog.set_level(logging.ERROR)
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_list_clusters", {})
    assert result.is_error and result.structured_content is not None
    err = result.structured_content
    assert err["code"] == "internal_error" and err["incident_id"]
    assert "Traceback" not in result.content[0].text  # type: ignore[union-attr]
    assert err["incident_id"] in caplog.text


async def test_unknown_tool_is_a_validation_error_naming_the_field(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_drop_everything", {})
    assert result.is_error and result.structured_content is not None
    assert (result.structured_content["code"], result.structured_content["field"]) == ("validation_error", "name")


async def test_a_body_missing_a_required_field_is_an_upstream_error_naming_the_field(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = _GarbageSandbox(clock=clock, sleep=clock.sleep)  # a cluster of only {"id": 5}
    app = build_app(sandbox_settings(tmp_path / "audit.jsonl"), sandbox=sandbox, clock=clock, sleep=clock.sleep)
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_list_clusters", {})
    assert result.is_error and result.structured_content is not None
    err = result.structured_content
    assert err["code"] == "upstream_error" and "name: Field required" in err["message"]


async def test_list_body_of_the_wrong_shape_is_an_upstream_error_not_an_empty_list(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = _GarbageSandbox(clock=clock, sleep=clock.sleep)
    sandbox.body = {"databases": "not a list"}
    app = build_app(sandbox_settings(tmp_path / "audit.jsonl"), sandbox=sandbox, clock=clock, sleep=clock.sleep)
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_list_clusters", {})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == "upstream_error"
