"""Bulk agent re-reads: ``GET /api/v2/users?id=..&expand=..``, single reads only for what an
answer lacks, no agent ever dropped, retries under the budget until a deadline."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import anyio
import httpx
import pytest

from outdial.clock import ManualClock
from outdial.fake import FakePlatform
from outdial.platforms.base import AuthError, PlatformError, RetryableError
from outdial.platforms.genesys.client import USERS_PER_REQUEST, GenesysPlatform
from outdial.platforms.ratelimit import RateBudget, RequestBudget

pytestmark = pytest.mark.anyio

# The repository's copy of the shared platform fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genesys"
AGENT = "3b6a8e2c-5d41-4f0b-9a77-1c2d3e4f5a60"
OTHER = "8d1f0a3e-2b7c-4e95-a6d4-5f0e1c2b3a47"


def fixture(name: str) -> Any:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared Genesys fixture {path} not found")
    return json.loads(path.read_text())


def listed_user(user_id: str = AGENT, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fixture's user entry, for ``user_id``, without the expands named in ``drop``."""
    user: dict[str, Any] = copy.deepcopy(fixture("users-expand-rest.json")["entities"][0])
    user["id"] = user_id
    for key in drop:
        user.pop(key, None)
    return user


def listing(users: list[dict[str, Any]], **paging: Any) -> dict[str, Any]:
    return {"entities": users, "pageSize": 100, "pageNumber": 1, "total": len(users), **paging}


class Sleeper:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


class Api:
    """A mocked platform: ``handler`` answers every request but the token's."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.clock = ManualClock(monotonic=0.0)
        self.sleep = Sleeper(self.clock)
        self.requests: list[httpx.Request] = []

        def route(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token":
                return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
            self.requests.append(request)
            return handler(request)

        self.platform = GenesysPlatform(
            api_url="http://api.test",
            login_url="http://login.test",
            client_id="id",
            client_secret="secret",
            clock=self.clock,
            transport=httpx.MockTransport(route),
            budget=RequestBudget(RateBudget(300, 60, margin=0), self.clock, self.sleep),
            sleep=self.sleep,
            rng=Random(0),
        )

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def answer_listing(*users: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    """Answers the listing with those of ``users`` the request asks for."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/users":
            asked = request.url.params.get_list("id")
            return httpx.Response(200, json=listing([u for u in users if u["id"] in asked]))
        return httpx.Response(404, json={"message": "not here", "status": 404})

    return handler


async def test_one_request_reads_every_part_and_an_unknown_id_is_kept() -> None:
    api = Api(answer_listing(listed_user()))
    states = await api.platform.get_agent_states([AGENT, OTHER, AGENT])
    [request] = api.requests
    assert request.url.path == "/api/v2/users"
    assert request.url.params.get_list("id") == [AGENT, OTHER]
    assert request.url.params["expand"] == "presence,routingStatus,conversationSummary"
    assert request.url.params["pageSize"] == str(USERS_PER_REQUEST)

    agent, other = states
    assert (agent.user_id, agent.known) == (AGENT, True)
    assert agent.presence is not None
    assert agent.presence["presenceDefinition"]["systemPresence"] == "Available"
    # Routing status in the event's shape, whatever the REST body carries besides.
    assert agent.routing_status == {"status": "OFF_QUEUE", "startTime": "2026-11-23T08:00:00.000Z"}
    assert agent.conversation_summary is not None
    assert agent.conversation_summary["call"]["enterprise"] == {"active": 0, "acw": 0}
    # Not dropped: the platform does not know it, and says so.
    assert (other.user_id, other.known) == (OTHER, False)
    assert (other.presence, other.routing_status, other.conversation_summary) == (None,) * 3
    await api.platform.aclose()


async def test_at_most_a_hundred_ids_a_request() -> None:
    ids = [f"user-{i:03d}" for i in range(250)]
    api = Api(answer_listing(*(listed_user(i) for i in ids)))
    states = await api.platform.get_agent_states(ids)
    assert [len(r.url.params.get_list("id")) for r in api.requests] == [100, 100, 50]
    assert [s.user_id for s in states] == ids
    assert all(s.known and s.presence for s in states)
    await api.platform.aclose()


@pytest.mark.parametrize(
    ("missing", "read"),
    [
        ("presence", f"/api/v2/users/{AGENT}/presences/purecloud"),
        ("routingStatus", f"/api/v2/users/{AGENT}/routingstatus"),
        ("conversationSummary", f"/api/v2/users/{AGENT}"),
    ],
)
async def test_a_missing_expand_is_read_on_its_own_and_only_it(missing: str, read: str) -> None:
    rest = fixture("user-presence-rest.json")
    full = listed_user()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v2/users":
            return httpx.Response(200, json=listing([listed_user(drop=(missing,))]))
        if path.endswith("/presences/purecloud"):
            return httpx.Response(200, json=rest)
        if path.endswith("/routingstatus"):
            return httpx.Response(200, json={**full["routingStatus"], "status": "IDLE"})
        assert request.url.params["expand"] == "conversationSummary"
        return httpx.Response(
            200, json={"id": AGENT, "conversationSummary": full["conversationSummary"]}
        )

    api = Api(handler)
    [state] = await api.platform.get_agent_states([AGENT])
    assert api.paths == ["/api/v2/users", read]
    assert state.presence is not None
    assert state.routing_status is not None
    assert state.conversation_summary is not None
    if missing == "routingStatus":
        assert state.routing_status == {"status": "IDLE", "startTime": "2026-11-23T08:00:00.000Z"}
    await api.platform.aclose()


async def test_retryable_failures_are_retried_under_the_budget_until_they_succeed() -> None:
    failures = [
        httpx.Response(503, json={"message": "unavailable"}),
        httpx.Response(429, headers={"Retry-After": "5"}, json={"message": "slow down"}),
    ]
    listed = answer_listing(listed_user())

    def handler(request: httpx.Request) -> httpx.Response:
        return failures.pop(0) if failures else listed(request)

    api = Api(handler)
    [state] = await api.platform.get_agent_states([AGENT])
    assert state.known
    assert state.presence is not None
    assert len(api.requests) == 3
    # The 429's Retry-After was waited out (on the injected clock, not for real).
    assert api.clock.monotonic() >= 5.0
    await api.platform.aclose()


async def test_a_network_error_on_a_single_read_is_retried() -> None:
    broken = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/users":
            return httpx.Response(200, json=listing([listed_user(drop=("presence",))]))
        if broken:
            broken.pop()
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=fixture("user-presence-rest.json"))

    api = Api(handler)
    [state] = await api.platform.get_agent_states([AGENT])
    assert state.presence is not None
    assert api.paths.count(f"/api/v2/users/{AGENT}/presences/purecloud") == 2
    await api.platform.aclose()


async def test_still_failing_at_the_deadline_raises() -> None:
    api = Api(lambda request: httpx.Response(503, json={"message": "unavailable"}))
    with pytest.raises(RetryableError, match="giving up at the deadline") as caught:
        await api.platform.get_agent_states([AGENT], give_up_after=30.0)
    assert caught.value.status == 503
    assert len(api.requests) > 2
    assert api.clock.monotonic() <= 30.0
    await api.platform.aclose()


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    api = Api(lambda request: httpx.Response(403, json={"message": "missing permission"}))
    with pytest.raises(AuthError):
        await api.platform.get_agent_states([AGENT])
    assert len(api.requests) == 1
    await api.platform.aclose()


def malformed(case: str) -> Any:
    if case == "entities":
        return {"entities": "nope"}
    if case == "entities.0.id":
        return {"entities": [{"name": "no id"}]}
    bads: dict[str, dict[str, Any]] = {
        "entities[0].presence.presenceDefinition": {"presence": {"source": "PURECLOUD"}},
        "entities[0].routingStatus.status": {"routingStatus": {"startTime": "x"}},
        "entities[0].conversationSummary.call.enterprise": {
            "conversationSummary": {"call": {"enterprise": 3}}
        },
    }
    return listing([{**listed_user(), **bads[case]}])


@pytest.mark.parametrize(
    "named",
    [
        "entities",
        "entities.0.id",
        "entities[0].presence.presenceDefinition",
        "entities[0].routingStatus.status",
        "entities[0].conversationSummary.call.enterprise",
    ],
)
async def test_a_malformed_answer_says_what_is_wrong(named: str) -> None:
    body = malformed(named)
    api = Api(lambda request: httpx.Response(200, json=body))
    with pytest.raises(PlatformError, match="unexpected answer") as caught:
        await api.platform.get_agent_states([AGENT])
    assert named in str(caught.value)
    assert not caught.value.retryable
    await api.platform.aclose()


async def test_a_second_page_is_read_when_the_platform_pages_anyway() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        number = request.url.params["pageNumber"]
        user = listed_user(AGENT if number == "1" else OTHER)
        return httpx.Response(200, json=listing([user], pageNumber=int(number), pageCount=2))

    api = Api(handler)
    states = await api.platform.get_agent_states([AGENT, OTHER])
    assert [s.known for s in states] == [True, True]
    assert len(api.requests) == 2
    await api.platform.aclose()


async def test_get_agent_state_is_the_bulk_read_of_one() -> None:
    api = Api(answer_listing(listed_user()))
    state = await api.platform.get_agent_state(AGENT)
    assert api.paths == ["/api/v2/users"]
    assert state.known
    assert state.conversation_summary is not None
    assert (await api.platform.get_agent_state(OTHER)).known is False
    await api.platform.aclose()


async def test_without_the_listing_every_agent_is_read_on_its_own() -> None:
    rest = fixture("user-presence-rest.json")

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/api/v2/users/{AGENT}/presences/purecloud":
            return httpx.Response(200, json=rest)
        if path == f"/api/v2/users/{AGENT}/routingstatus":
            return httpx.Response(200, json={"userId": AGENT, "status": "IDLE"})
        return httpx.Response(404, json={"message": "not found", "status": 404})

    api = Api(handler)
    agent, other = await api.platform.get_agent_states([AGENT, OTHER])
    assert agent.known
    assert agent.presence == rest
    assert agent.routing_status == {"status": "IDLE"}
    assert not other.known
    # The missing listing is remembered: the next read does not ask for it again.
    await api.platform.get_agent_states([AGENT])
    assert api.paths.count("/api/v2/users") == 1
    await api.platform.aclose()


async def test_against_the_fake_every_agent_comes_back() -> None:
    async with FakePlatform([AGENT], seed=0) as fake:
        await fake.set_presence(AGENT, "Busy")
        platform = GenesysPlatform(
            api_url=fake.api_url,
            login_url=fake.login_url,
            client_id=fake.client_id,
            client_secret=fake.client_secret,
        )
        try:
            agent, other = await platform.get_agent_states([AGENT, "no-such-user"])
        finally:
            await platform.aclose()
    assert agent.known
    assert agent.presence is not None
    assert agent.presence["presenceDefinition"]["systemPresence"] == "Busy"
    assert agent.routing_status is not None
    assert set(agent.routing_status) <= {"status", "startTime"}
    assert not other.known
