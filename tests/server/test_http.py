"""The shared upstream layer: what is retried, what is not, pacing, and the error model it produces."""

from __future__ import annotations

from urllib.parse import quote

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.http import ProviderErrorParts, RetryPolicy, Upstream
from tests.support import ManualClock

pytestmark = pytest.mark.anyio


def _parse(response: httpx2.Response) -> ProviderErrorParts:
    body = response.json() if response.content else {}
    return ProviderErrorParts(provider_code=body.get("id"), message=body.get("message"), request_id=body.get("rid"))


def _hint(info: ErrorInfo) -> str | None:
    return f"hint for {info.code}"


def _upstream(handler: httpx2.MockTransport, clock: ManualClock, **policy: float) -> Upstream:
    client = httpx2.AsyncClient(transport=handler, base_url="http://x")
    return Upstream(
        provider="p",
        backend="sandbox",
        client=client,
        parse_error=_parse,
        hint=_hint,
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=clock.sleep,
        jitter=lambda: 0.5,
        clock=clock,
    )


def _script(*responses: httpx2.Response | Exception) -> tuple[httpx2.MockTransport, list[str]]:
    seen: list[str] = []
    queue = list(responses)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.method)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx2.MockTransport(handler), seen


async def test_get_is_retried_after_503_and_succeeds() -> None:
    transport, seen = _script(httpx2.Response(503), httpx2.Response(200, json={"ok": True}))
    up = _upstream(transport, ManualClock())
    response = await up.request("GET", "/a")
    assert response.json() == {"ok": True}
    assert seen == ["GET", "GET"]


async def test_post_is_not_retried_after_500() -> None:
    transport, seen = _script(httpx2.Response(500, json={"id": "server_error", "message": "boom"}))
    up = _upstream(transport, ManualClock())
    with pytest.raises(PoolpilotError) as caught:
        await up.request("POST", "/a", json_body={})
    assert seen == ["POST"]
    assert caught.value.info.code == "upstream_error"
    assert caught.value.info.provider_code == "server_error"


async def test_429_honours_retry_after_even_for_post() -> None:
    clock = ManualClock()
    transport, seen = _script(
        httpx2.Response(429, headers={"retry-after": "7"}, json={"id": "too_many_requests"}),
        httpx2.Response(201, json={}),
    )
    up = _upstream(transport, clock)
    await up.request("POST", "/a", json_body={}, ok=(201,))
    assert seen == ["POST", "POST"]
    assert clock.slept == [7.0]


async def test_429_exhausted_reports_retry_after() -> None:
    too_many = [httpx2.Response(429, headers={"retry-after": "3"}, json={"id": "too_many_requests"})] * 2
    transport, _ = _script(*too_many)
    up = _upstream(transport, ManualClock(), attempts=2)
    with pytest.raises(PoolpilotError) as caught:
        await up.request("GET", "/a")
    assert caught.value.info.code == "rate_limited"
    assert caught.value.info.retry_after_s == 3.0
    assert caught.value.info.hint == "hint for rate_limited"


async def test_idempotent_put_is_retried_on_timeout() -> None:
    transport, seen = _script(httpx2.ReadTimeout("slow"), httpx2.Response(204))
    up = _upstream(transport, ManualClock())
    response = await up.request("PUT", "/a", json_body={}, idempotent=True, ok=(204,))
    assert response.status_code == 204
    assert seen == ["PUT", "PUT"]


async def test_non_idempotent_timeout_is_reported_not_retried() -> None:
    transport, seen = _script(httpx2.ReadTimeout("slow"))
    up = _upstream(transport, ManualClock())
    with pytest.raises(PoolpilotError) as caught:
        await up.request("POST", "/a", json_body={})
    assert seen == ["POST"]
    assert caught.value.info.code == "timeout"
    assert "may or may not" in (caught.value.info.hint or "")


async def test_connect_error_is_retried_even_for_post() -> None:
    transport, seen = _script(httpx2.ConnectError("refused"), httpx2.Response(201, json={}))
    up = _upstream(transport, ManualClock())
    await up.request("POST", "/a", json_body={}, ok=(201,))
    assert seen == ["POST", "POST"]


async def test_connection_error_after_retries_is_an_error_model() -> None:
    transport, _ = _script(*[httpx2.RemoteProtocolError("dropped")] * 4)
    up = _upstream(transport, ManualClock())
    with pytest.raises(PoolpilotError) as caught:
        await up.request("GET", "/a")
    assert caught.value.info.code == "connection_error"


async def test_low_rate_limit_budget_paces_the_next_call() -> None:
    clock = ManualClock()
    headers = {"ratelimit-limit": "250", "ratelimit-remaining": "2", "ratelimit-reset": str(int(clock.now) + 10)}
    transport, _ = _script(httpx2.Response(200, headers=headers, json={}), httpx2.Response(200, json={}))
    up = _upstream(transport, clock)
    await up.request("GET", "/a")
    assert clock.slept == []
    await up.request("GET", "/a")
    assert clock.slept == [pytest.approx(2.0)]  # 10 s left / 2 remaining = 5 s, capped at max_pace_s


async def test_html_error_body_falls_back_to_status() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, text="<html>not here</html>")

    def parse(response: httpx2.Response) -> ProviderErrorParts:
        return ProviderErrorParts()

    up = Upstream(
        provider="p",
        backend="live",
        client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        parse_error=parse,
        hint=_hint,
    )
    with pytest.raises(PoolpilotError) as caught:
        await up.request("GET", "http://x/a")
    assert caught.value.info.code == "not_found"
    assert caught.value.info.message == "p answered HTTP 404"
    assert "html" not in caught.value.info.text()


@pytest.mark.parametrize("path", ["/v2/databases/c/dbs/.", "/v2/databases/c/dbs/..", "/v2/databases/c/./dbs/x"])
async def test_a_path_the_url_library_would_rewrite_is_never_sent(path: str) -> None:
    sent: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        return httpx2.Response(204)

    up = Upstream(
        provider="p",
        backend="live",
        client=httpx2.AsyncClient(base_url="http://x", transport=httpx2.MockTransport(handler)),
        parse_error=lambda response: ProviderErrorParts(),
        hint=_hint,
    )
    with pytest.raises(PoolpilotError) as caught:
        await up.request("DELETE", path, idempotent=True, ok=(204,))
    assert caught.value.info.code == "validation_error" and sent == [] and up.requests_sent == 0
    assert (await up.request("DELETE", "/v2/databases/c/dbs/%2E", idempotent=True, ok=(204,))).status_code == 204
    assert sent == ["/v2/databases/c/dbs/."]  # percent-encoded, the dot is data: sent as built


async def test_a_refused_path_is_refused_again_not_remembered() -> None:
    sent: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        return httpx2.Response(200)

    up = _upstream(httpx2.MockTransport(handler), ManualClock())
    for _ in range(2):
        with pytest.raises(PoolpilotError):
            await up.request("GET", "/v2/databases/c/dbs/..")
    assert sent == [] and up.requests_sent == 0


_SEGMENT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(_SEGMENT, min_size=1, max_size=3),
    params=st.lists(st.tuples(st.sampled_from(["tag_name", "page", "q"]), _SEGMENT | st.integers()), max_size=2),
    extra=st.dictionaries(st.sampled_from(["X-Trace", "Accept"]), st.from_regex(r"[a-z0-9/]{1,8}", fullmatch=True)),
)
def test_a_repeated_request_goes_out_exactly_as_httpx2_builds_it(
    segments: list[str], params: list[tuple[str, str | int]], extra: dict[str, str]
) -> None:
    """Reads reuse the URL built for the same path and query (issue 23): what goes on the wire must not change."""
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200)

    client = httpx2.AsyncClient(
        transport=httpx2.MockTransport(handler), base_url="http://x/api", headers={"Authorization": "Bearer t"}
    )
    up = Upstream(provider="p", backend="live", client=client, parse_error=_parse, hint=_hint)
    path = "/v2/" + "/".join(quote(s, safe="") for s in segments)
    query: list[tuple[str, str | int | float | bool | None]] = list(params)

    async def run() -> None:
        await up.request("GET", path, params=query)
        await up.request("GET", path, params=query, headers=extra)
        await up.request("GET", path, params=query)
        await up.request("GET", path)  # the same path without the query is another URL

    anyio.run(run)
    plain = client.build_request("GET", path, params=query)
    with_extra = client.build_request("GET", path, params=query, headers=extra)
    bare = client.build_request("GET", path)
    for request, expected in zip(sent, [plain, with_extra, plain, bare], strict=True):
        assert str(request.url) == str(expected.url) and request.url.raw_path == expected.url.raw_path
        assert request.headers.raw == expected.headers.raw
        assert request.extensions == expected.extensions
        assert request.content == b""


async def test_cookies_the_provider_set_still_go_back_on_repeated_reads() -> None:
    cookies: list[str | None] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        cookies.append(request.headers.get("cookie"))
        return httpx2.Response(200, headers={"set-cookie": "lb=node-2; Path=/"})

    up = _upstream(httpx2.MockTransport(handler), ManualClock())
    for _ in range(3):
        await up.request("GET", "/a")
    assert cookies == [None, "lb=node-2", "lb=node-2"]
