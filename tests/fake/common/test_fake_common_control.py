"""Both fakes' control endpoints run the same checks, in the same order, with the same answers:
the ``Host`` header (403), a cross-site browser request (403), the Bearer control token (401),
then the route table (404 unknown path, 405 other method)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from outdial.fake import FakeCxone, FakePlatform
from outdial.fake.control import control_token

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _control(kind: str) -> AsyncIterator[tuple[str, str, str]]:
    """The fake's control URL, its token, and the header carrying each answer's id."""
    if kind == "genesys":
        async with FakePlatform(seed=0) as platform:
            yield platform.control_url, control_token(platform), "ININ-Correlation-Id"
    else:
        async with FakeCxone(seed=0) as cxone:
            yield cxone.control_url, cxone.control_token, "X-Request-Id"


async def _get(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path, headers=headers)


KINDS = pytest.mark.parametrize("kind", ["genesys", "cxone"])


def _code(response: httpx.Response) -> str:
    body = response.json()
    # The Genesys ErrorBody on both fakes' control endpoints.
    assert {"message", "code", "status", "contextId", "details"} <= set(body)
    assert body["status"] == response.status_code
    return str(body["code"])


@KINDS
async def test_the_token_opens_the_state_and_every_answer_carries_an_id(kind: str) -> None:
    async with _control(kind) as (url, token, id_header):
        headers = {"Authorization": f"Bearer {token}"}
        answer = await _get(url, "/state", headers)
    assert answer.status_code == 200
    assert answer.headers[id_header]


@KINDS
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer"])
async def test_without_the_right_bearer_token_the_answer_is_401_naming_the_realm(
    kind: str, authorization: str | None
) -> None:
    async with _control(kind) as (url, _token, id_header):
        headers = {} if authorization is None else {"Authorization": authorization}
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.get("/state", headers=headers)
    assert answer.status_code == 401
    assert _code(answer) == "bad.credentials"
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="outdial fake control"'
    assert answer.headers[id_header] == answer.json()["contextId"]


@KINDS
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Host": "evil.example"}, "host.not.allowed"),
        ({"Origin": "http://evil.example"}, "cross.site.request"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross.site.request"),
    ],
)
async def test_a_foreign_host_or_a_cross_site_request_is_403_even_with_the_token(
    kind: str, headers: dict[str, str], code: str
) -> None:
    async with _control(kind) as (url, token, _id), httpx.AsyncClient(base_url=url) as client:
        answer = await client.post(
            "/clear", headers={"Authorization": f"Bearer {token}", **headers}
        )
    assert answer.status_code == 403
    assert _code(answer) == code
    assert "WWW-Authenticate" not in answer.headers


@KINDS
async def test_same_origin_requests_pass(kind: str) -> None:
    async with _control(kind) as (url, token, _id), httpx.AsyncClient(base_url=url) as client:
        origin = str(client.base_url.copy_with(path="")).rstrip("/")
        answer = await client.post(
            "/clear",
            headers={
                "Authorization": f"Bearer {token}",
                "Origin": origin,
                "Sec-Fetch-Site": "same-origin",
            },
        )
    assert answer.status_code == 200
    assert answer.json() == {"cleared": True}


@KINDS
async def test_behind_the_checks_unknown_paths_are_404_and_other_methods_405(kind: str) -> None:
    async with _control(kind) as (url, token, _id):
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth) as client:
            unknown = await client.get("/nowhere")
            wrong_method = await client.post("/state")
            anonymous = await client.get("/nowhere", headers={"Authorization": ""})
    assert (unknown.status_code, _code(unknown)) == (404, "not.found")
    assert (wrong_method.status_code, _code(wrong_method)) == (405, "method.not.allowed")
    # The token is checked before the path: nothing is learnt about routes without it.
    assert anonymous.status_code == 401
