"""Both fakes' API ports answer route misses through the common front, each in its own shape."""

from __future__ import annotations

import httpx
import pytest

from outdial.fake import FakeCxone, FakePlatform

pytestmark = pytest.mark.anyio


async def test_genesys_unknown_path_404_other_method_405_with_correlation_ids() -> None:
    async with (
        FakePlatform(seed=0) as platform,
        httpx.AsyncClient(base_url=platform.api_url) as api,
    ):
        unknown = await api.get("/api/v2/nowhere")
        wrong = await api.delete("/api/v2/users")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not.found")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method.not.allowed")
    for answer in (unknown, wrong):
        assert answer.headers["ININ-Correlation-Id"] == answer.json()["contextId"]
        # A route miss is answered before the token is asked for: nothing is counted.
        assert "inin-ratelimit-count" not in answer.headers


async def test_cxone_unknown_path_404_other_method_405_bad_version_and_recording() -> None:
    async with FakeCxone(seed=0) as cxone, httpx.AsyncClient(base_url=cxone.api_url) as api:
        unknown = await api.get("/InContactAPI/services/v23.0/nowhere")
        wrong = await api.put("/InContactAPI/services/v23.0/agents/states")
        version = await api.get("/InContactAPI/services/latest/agents/states")
        async with httpx.AsyncClient(base_url=cxone.issuer_url) as issuer:
            discovery = await issuer.post("/.well-known/openid-configuration")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "NotFound")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "MethodNotAllowed")
    assert (version.status_code, version.json()["error"]) == (404, "InvalidApiVersion")
    assert discovery.status_code == 405
    assert "WWW-Authenticate" not in discovery.headers
    for answer in (unknown, wrong, version, discovery):
        assert answer.headers["X-Request-Id"]
    statuses = [(r.method, r.status) for r in cxone.recorded.requests]
    assert statuses == [("GET", 404), ("PUT", 405), ("GET", 404), ("POST", 405)]
