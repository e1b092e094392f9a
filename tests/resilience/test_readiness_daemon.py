"""Personal dialing on the ready topic: the real daemon against the fake, over real sockets.

The fake behaves as a real Genesys Cloud org does: presence is what the agent
chose and no call changes it; calls show in the conversation summary and on
the agent's calls topic (wrap-up included). The daemon must work through an
agent's list one call at a time without a single presence event, hold off
while the agent is on a call it did not place, pick up again when a window
opens, a retry comes due or contacts arrive, and lose no agent to a rate
limit or a gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from backends import Backend, CxoneBackend, backend_fixture  # noqa: F401 (the backend fixture)
from daemon_harness import AFTER_CALL, NUMBERS, daemon_for, ready_config, sqlite
from listener_harness import USER

from outdial.clock import ManualClock
from outdial.fake import FakePlatform, Outcome
from outdial.fake.cxone import ERROR_FORMATS
from outdial.fake.pytest_plugin import FAST_TIMING
from outdial.store import open_store
from outdial.store.base import ContactRow

pytestmark = pytest.mark.anyio

CALLBACK_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "callback.toml"


async def test_an_agent_who_stays_available_works_through_a_20_contact_list(
    tmp_path: Path, backend: Backend
) -> None:
    """One call at a time, in the list's order, each contact once: the agent never
    changes their state, so readiness comes from the calls' ends alone."""
    [agent] = backend.agent_ids(1)
    async with backend.start([agent]) as fake:
        for number in NUMBERS:
            fake.set_outcome(number, Outcome.ANSWERED)
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, n) for n in NUMBERS]) as run:
            await run.until("call.ended", len(NUMBERS))
            placed, ended = run.times("dial.placed"), run.times("call.ended")
            presences = list(run.presences)
        calls = fake.calls()
    assert [c.number for c in calls] == NUMBERS
    assert {(c.agent, c.outcome) for c in calls} == {(agent, "answered")}
    assert len(placed) == len(NUMBERS)
    for before, after in zip(ended, placed[1:], strict=False):
        # One call at a time, each dial within after_call + 1 s of the previous call's end.
        # (The rest counts from the platform's end time, which may precede our log line.)
        assert before < after <= before + AFTER_CALL + 1.0
    assert presences == []  # Genesys: no presence event at all, a call never changes presence


async def test_after_call_work_holds_the_next_dial_until_it_is_over(
    tmp_path: Path, backend: Backend
) -> None:
    """The call has ended but the agent is still wrapping up (CXone: the contact's
    ``Disconnected`` with ``FinalState=False``, ``IsAcw=True``): no dial until the
    platform says the wrap-up is over (``FinalState=True``), then one within a second."""
    [agent] = backend.agent_ids(1)
    first, second = NUMBERS[:2]
    async with backend.start([agent]) as fake:
        fake.set_outcome(first, Outcome.ANSWERED)
        fake.set_outcome(second, Outcome.ANSWERED)
        fake.hold_acw(agent)
        config = fake.config(sqlite(tmp_path), acw=True)
        async with daemon_for(config, contacts=[(agent, first), (agent, second)]) as run:
            [call] = await fake.wait_for_calls(1)
            await fake.wait_for(lambda: fake.in_acw(agent))
            await run.until("call.ended")
            # The daemon has looked at the agent in after-call work and let them be.
            await run.log.until(
                lambda: any(
                    "after-call work" in e["reason"] or "wrapping up" in e["reason"]
                    for e in run.log.named("agent.not_ready", user=agent)
                )
            )
            verdict = run.daemon.handlers.pacer.verdicts[agent]
            assert not verdict.ready
            assert verdict.recheck_at is None  # only the wrap-up's end can change it
            # Time passes, longer than the rest after a call, with the daemon listening:
            # still nothing, however long the agent wraps up.
            await fake.quiet_rounds(2)
            assert fake.in_acw(agent)
            assert fake.numbers() == [first]
            assert len(run.log.named("dial.placed")) == 1
            ended = anyio.current_time()
            await fake.end_acw(call.call_id)
            await run.until("dial.placed", 2)
            placed = run.times("dial.placed")[1]
    assert fake.numbers() == [first, second]
    assert placed - ended <= AFTER_CALL + 1.0


async def test_an_agent_on_a_call_outdial_did_not_place_waits_for_it_and_its_wrap_up(
    tmp_path: Path, backend: Backend
) -> None:
    [agent] = backend.agent_ids(1)
    async with backend.start([agent]) as fake:
        fake.hold_acw(agent)
        inbound = await fake.start_foreign_call(agent, "+441212345699")
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, NUMBERS[0])]) as run:
            await run.until("agent.not_ready", user=agent)
            assert fake.calls() == []
            await fake.end_foreign_call(inbound)
            await fake.wait_for(lambda: fake.in_acw(agent))
            await run.log.until(
                lambda: any(
                    "after-call work" in e["reason"] or "wrapping up" in e["reason"]
                    for e in run.log.named("agent.not_ready", user=agent)
                )
            )
            assert fake.calls() == []
            ended = anyio.current_time()
            await fake.end_acw(inbound)
            await run.until("dial.placed")
            [placed] = run.times("dial.placed")
    assert fake.numbers() == [NUMBERS[0]]
    assert placed - ended <= AFTER_CALL + 1.0


async def test_an_agent_who_goes_away_is_not_dialed_and_available_again_is(
    tmp_path: Path, backend: Backend
) -> None:
    [agent] = backend.agent_ids(1)
    async with backend.start([agent], available=False) as fake:
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, NUMBERS[0])]) as run:
            await run.until("agent.not_ready", reason=fake.away_reason())
            assert fake.calls() == []
            await fake.available(agent)
            back = anyio.current_time()
            await run.until("dial.placed")
            [placed] = run.times("dial.placed")
    assert fake.numbers() == [NUMBERS[0]]
    assert placed - back <= 1.0


async def test_upper_case_presences_are_read_as_the_same_presences(tmp_path: Path) -> None:
    """Genesys only: ``presence_case`` is a switch of the Genesys fake (the wire may
    spell ``AVAILABLE``); CXone's agent states have one spelling."""
    async with FakePlatform([USER], timing=FAST_TIMING, presence_case="upper") as platform:
        await platform.set_presence(USER, "Away")
        config = ready_config(platform, sqlite(tmp_path))
        async with daemon_for(config, contacts=[(USER, NUMBERS[0])]) as run:
            await run.until("agent.not_ready", reason="presence AWAY")
            await platform.set_presence(USER, "Available")
            await run.until("dial.placed")
    assert platform.agent_presence(USER).upper() == "AVAILABLE"


async def test_a_window_opening_a_retry_coming_due_and_an_import_each_dial_within_a_second(
    tmp_path: Path, backend: Backend
) -> None:
    la, berlin, later = "+12135550123", "+4930901820", "+4930901821"
    clock = ManualClock(datetime(2026, 1, 5, 15, 50, tzinfo=UTC))  # 07:50 in Los Angeles
    [agent] = backend.agent_ids(1)
    async with backend.start([agent]) as fake:
        fake.set_outcome(berlin, Outcome.BUSY)
        fake.set_outcome(la, Outcome.ANSWERED)
        url = sqlite(tmp_path)
        config = fake.config(url, calling_window=("08:00", "21:00"))
        async with daemon_for(config, contacts=[(agent, la), (agent, berlin)], clock=clock) as run:

            async def resting(calls: int) -> None:
                # The rest after a call starts once its wrap-up is over: only then does
                # moving the clock pass it.
                await run.until("agent.not_ready", calls, reason="resting after the last call")

            # The closed LA contact does not block the open Berlin one behind it.
            await run.until("call.ended")
            assert fake.numbers() == [berlin]
            await resting(1)  # the call is over for the agent (CXone: its ACW too)
            clock.advance(AFTER_CALL)
            await run.until("dial.skipped", guard="contacts", user=agent)
            # 08:00 in Los Angeles: dialed within a second of the window opening.
            clock.set_wall(datetime(2026, 1, 5, 16, 0, tzinfo=UTC))
            opened = anyio.current_time()
            await run.until("dial.placed", 2)
            assert run.times("dial.placed")[1] - opened <= 1.0
            await run.until("call.ended", 2)
            await resting(2)
            # Berlin was busy: due again after retry_after (600 s), dialed as it comes due.
            clock.advance(600 - AFTER_CALL)
            due = anyio.current_time()
            await run.until("dial.placed", 3)
            assert run.times("dial.placed")[2] - due <= 1.0
            await run.until("call.ended", 3)
            await resting(3)
            clock.advance(AFTER_CALL)
            # Nothing left; a contact imported by another process is dialed within a second.
            await run.until("dial.skipped", 2, guard="contacts", user=agent)
            async with open_store(url) as other:
                await other.import_contacts([ContactRow(agent, later)])
            imported = anyio.current_time()
            await run.until("dial.placed", 4)
            assert run.times("dial.placed")[3] - imported <= 1.0
    assert fake.numbers() == [berlin, la, berlin, later]


async def test_twenty_ready_agents_under_two_calls_a_second_are_all_dialed(
    tmp_path: Path, backend: Backend
) -> None:
    agents = backend.agent_ids(20)
    async with backend.start(agents) as fake:
        config = fake.config(sqlite(tmp_path), agents, calls_per_second=2.0)
        contacts = [(a, NUMBERS[i]) for i, a in enumerate(agents)]
        started = anyio.current_time()
        async with daemon_for(config, contacts=contacts) as run:
            await run.until("dial.placed", len(agents))
            last = max(run.times("dial.placed"))
    assert sorted(c.agent for c in fake.calls()) == sorted(agents)
    assert last - started <= 12.0


async def test_a_thousand_agents_are_re_read_in_ten_requests_and_none_is_dropped(
    tmp_path: Path,
) -> None:
    """Genesys only: the bulk users read (100 agents a request) is Genesys's; CXone
    re-reads each agent on its own session, one session per agent."""
    agents = [f"agent-{i:04d}" for i in range(1000)]
    async with FakePlatform(agents, timing=FAST_TIMING, ws_proxy=True, seed=3) as platform:
        config = ready_config(platform, sqlite(tmp_path), agents)
        async with daemon_for(config, wait=60.0) as run:
            await run.until("daemon.refreshed")
            reads = run.log.named("fake.http.request")
            first = [r for r in reads if str(r.get("path", "")).startswith("/api/v2/users")]
            await platform.drop_sockets()
            await run.until("daemon.refreshed", 2)
            reads = run.log.named("fake.http.request")
            again = [r for r in reads if str(r.get("path", "")).startswith("/api/v2/users")]
            verdicts = dict(run.daemon.handlers.pacer.verdicts)
            unread = [e for e in run.log.named("daemon.refreshed") if e.get("unread")]
    assert len(first) <= 10
    assert len(again) - len(first) <= 10
    assert unread == []
    # Every agent was read: each has a verdict from its real state (no contacts to call).
    assert sorted(verdicts) == agents
    assert all(not v.reason.endswith("not known yet") for v in verdicts.values())


async def test_dialing_resumes_after_a_gap_that_lost_the_calls_end(
    tmp_path: Path, backend: Backend
) -> None:
    [agent] = backend.agent_ids(1)
    async with backend.start([agent], proxy=True) as fake:
        fake.set_outcome(NUMBERS[0], Outcome.ANSWERED)
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, n) for n in NUMBERS[:2]]) as run:
            await run.until("dial.placed")
            [call] = fake.calls()
            async with fake.outage():
                # The call plays out while nobody listens: its end is lost.
                await fake.wait_for(lambda: fake.call_over(call.call_id))
            await fake.connected()
            reconnected = anyio.current_time()
            await run.until("dial.placed", 2)
            resumed = run.times("dial.placed")[1]
    assert fake.numbers() == NUMBERS[:2]
    assert resumed - reconnected <= 2.0


async def test_two_daemons_on_one_postgresql_place_one_call_per_readiness(
    postgres_url: str, postgres_schema: str, backend: Backend
) -> None:
    """Genesys: each daemon has its channels, the store's claims dedupe. CXone: an agent
    has one session, so one daemon holds the agent's lease and polls, the other stands by
    (two polling it would make each other's rotating session ids stale: gaps by hundreds)."""
    from outdial.store.postgres import PostgresStore

    numbers = NUMBERS[:3]
    [agent] = backend.agent_ids(1)
    async with backend.start([agent]) as fake:
        for number in numbers:
            fake.set_outcome(number, Outcome.ANSWERED)
        config = fake.config("postgresql://unused")
        first = await PostgresStore.connect(postgres_url, schema=postgres_schema)
        second = await PostgresStore.connect(postgres_url, schema=postgres_schema)
        try:
            async with (
                daemon_for(config, contacts=[(agent, n) for n in numbers], store=first) as a,
                daemon_for(config, store=second) as b,
            ):
                await a.log.until(
                    lambda: (
                        len(a.log.named("call.ended")) + len(b.log.named("call.ended"))
                        >= len(numbers)
                    )
                )
                await a.log.until(lambda: bool(a.log.named("dial.skipped", guard="contacts")))
                gaps = a.daemon.gaps_handled + b.daemon.gaps_handled
        finally:
            await first.aclose()
            await second.aclose()
    assert sorted(fake.numbers()) == sorted(numbers)
    # Sharing the platform is no fault: each daemon has its startup gap and no more.
    assert gaps <= 4, f"{gaps} gaps in {len(numbers)} calls"


@pytest.mark.parametrize("purposes", ["agent-customer", "user-external"])
async def test_the_callback_example_calls_back_once_when_the_customer_hangs_up_only(
    tmp_path: Path, purposes: str
) -> None:
    """Genesys only: ``examples/callback.toml`` is a Genesys config (its rule is on
    ``v2.users.{userId}.conversations.calls``)."""
    from outdial.fake.pytest_plugin import fake_config

    hung_up, kept_on = "+441212345611", "+441212345612"
    async with FakePlatform([USER], timing=FAST_TIMING, purposes=purposes, seed=3) as platform:
        # The callback itself is answered and ended by the customer too: it matches the
        # rule's pattern, but it is outdial's own call, so it is no new trigger.
        platform.set_outcome(hung_up, Outcome.ANSWERED)
        platform.set_hangup(hung_up, "customer")
        config = fake_config(
            platform,
            CALLBACK_EXAMPLE,
            store_url=sqlite(tmp_path),
            env={"GENESYS_CLIENT_ID": "x", "GENESYS_CLIENT_SECRET": "y"},
        )
        async with daemon_for(config) as run:
            await platform.wait_for_subscription(f"v2.users.{USER}.conversations.calls")
            # The agent hangs up on one caller: no callback.
            first = await platform.start_foreign_call(USER, phone_number=kept_on)
            await platform.end_foreign_call(first, by="agent")
            # A caller hangs up: called back.
            second = await platform.start_foreign_call(USER, phone_number=hung_up)
            await platform.end_foreign_call(second, by="customer")
            await run.until("dial.placed")
            await run.until("call.ended")
            # Its end reached the rules and was let go as outdial's own call.
            await run.until("rule.own_call")
        dialed = [c.payload["phoneNumber"] for c in platform.recorded.accepted_calls]
    assert dialed == [hung_up]


async def test_debug_logs_each_event_received_and_each_rest_request_with_its_time(
    tmp_path: Path,
) -> None:
    """Genesys only: the topic and REST paths asserted are Genesys's."""
    async with FakePlatform([USER], timing=FAST_TIMING, seed=3) as platform:
        config = ready_config(platform, sqlite(tmp_path))
        async with daemon_for(config, contacts=[(USER, NUMBERS[0])]) as run:
            await run.until("call.ended")
            events = run.log.named("frame.event")
            requests = run.log.named("rest.request")
    assert f"v2.users.{USER}.conversations.calls" in {e["topic"] for e in events}
    dial = [r for r in requests if r["method"] == "POST" and "/calls/user/" in r["path"]]
    assert [r["status"] for r in dial] == [200]
    assert all(isinstance(r["ms"], float) and r["ms"] >= 0 for r in requests)
    assert {"PUT", "GET", "POST"} <= {r["method"] for r in requests}


async def test_an_agent_id_the_platform_does_not_know_is_named_in_a_warning(
    tmp_path: Path, backend: Backend
) -> None:
    known, ghost = backend.agent_ids(2)
    async with backend.start([known]) as fake:
        config = fake.config(sqlite(tmp_path), [known, ghost])
        async with daemon_for(config, contacts=[(known, NUMBERS[0])]) as run:
            await run.until("agent.unknown")
            await run.until("dial.placed")  # the known agent is dialed all the same
            [unknown] = run.log.named("agent.unknown")
    assert unknown["user"] == ghost
    assert "check the rules' users" in unknown["reason"]
    assert fake.numbers() == [NUMBERS[0]]


@pytest.mark.parametrize("error_format", ERROR_FORMATS)
async def test_an_unknown_cxone_agent_stops_nobody_whatever_the_error_body_says(
    tmp_path: Path, error_format: str
) -> None:
    """CXone's error body format is not published: under each of the fake's readings
    (JSON, bare text, nothing at all) a rule naming an agent id CXone does not know
    still dials the other agents, and the unknown one is named."""
    backend = CxoneBackend()
    known, ghost = backend.agent_ids(2)
    async with backend.start([known], error_format=error_format) as fake:
        config = fake.config(sqlite(tmp_path), [known, ghost])
        async with daemon_for(config, contacts=[(known, NUMBERS[0])]) as run:
            await run.until("agent.unknown")
            await run.until("dial.placed")
            [unknown] = run.log.named("agent.unknown")
    assert unknown["user"] == ghost
    assert fake.numbers() == [NUMBERS[0]]


@pytest.mark.parametrize("disconnect_reasons", [False, True])
@pytest.mark.parametrize("purposes", ["auto", "agent-customer", "user-external"])
async def test_outcomes_and_pacing_hold_under_every_setting_the_platform_leaves_open(
    tmp_path: Path, purposes: str, disconnect_reasons: bool
) -> None:
    """Which purpose pair an API-placed call gets, and whether call events carry Q.850
    causes, no public source settles: the fake has a switch for each, and the daemon
    reads every outcome right and works through the list under each setting.

    Genesys only: these are the Genesys fake's switches; CXone's own (its
    ``DisconnectCode`` values) are the next test's."""
    outcomes = {
        NUMBERS[0]: Outcome.ANSWERED,
        NUMBERS[1]: Outcome.BUSY,
        NUMBERS[2]: Outcome.NO_ANSWER,
        NUMBERS[3]: Outcome.FAILED,
        NUMBERS[4]: Outcome.NO_ANSWER,  # the agent gives up while it rings (below)
    }
    async with FakePlatform(
        [USER],
        timing=FAST_TIMING,
        seed=3,
        purposes=purposes,
        disconnect_reasons=disconnect_reasons,
    ) as platform:
        for number, outcome in outcomes.items():
            platform.set_outcome(number, outcome)
        # Abandoned by the agent: customer leg ``peer``, agent leg ``client``; not busy.
        platform.set_hangup(NUMBERS[4], "agent")
        config = ready_config(platform, sqlite(tmp_path))
        async with daemon_for(config, contacts=[(USER, n) for n in outcomes]) as run:
            await run.until("call.ended", len(outcomes))
            ended = {e["conversation"]: e["outcome"] for e in run.log.named("call.ended")}
        calls = {
            c.conversation_id: c.payload["phoneNumber"] for c in platform.recorded.accepted_calls
        }
    assert sorted(calls.values()) == sorted(outcomes)  # each contact once, one after another
    assert {calls[cid]: outcome for cid, outcome in ended.items()} == {
        number: outcome.value for number, outcome in outcomes.items()
    }


@pytest.mark.parametrize("codes", ["named", "blank"])
async def test_cxone_outcomes_and_pacing_hold_whatever_the_disconnect_codes_say(
    tmp_path: Path, codes: str
) -> None:
    """CXone only: ``DisconnectCode`` values are not public. Named codes tell every
    outcome apart; blank ones tell only answered from not (``Active`` or never), and
    the daemon still works through the list, each contact once."""
    from backends import CxoneBackend

    from outdial.fake.cxone import BLANK_DISCONNECT_CODES, NAMED_DISCONNECT_CODES

    outcomes = {
        NUMBERS[0]: Outcome.ANSWERED,
        NUMBERS[1]: Outcome.BUSY,
        NUMBERS[2]: Outcome.NO_ANSWER,
        NUMBERS[3]: Outcome.FAILED,
    }
    table = NAMED_DISCONNECT_CODES if codes == "named" else BLANK_DISCONNECT_CODES
    backend = CxoneBackend()
    [agent] = backend.agent_ids(1)
    async with backend.start([agent], disconnect_codes=table) as fake:
        for number, outcome in outcomes.items():
            fake.set_outcome(number, outcome)
        config = fake.config(sqlite(tmp_path))
        async with daemon_for(config, contacts=[(agent, n) for n in outcomes]) as run:
            await run.until("call.ended", len(outcomes))
            ended = {e["conversation"]: e["outcome"] for e in run.log.named("call.ended")}
        calls = {c.call_id: c.number for c in fake.calls()}
    assert sorted(calls.values()) == sorted(outcomes)
    read = {calls[cid]: outcome for cid, outcome in ended.items()}
    if codes == "named":
        assert read == {number: outcome.value for number, outcome in outcomes.items()}
    else:
        assert read[NUMBERS[0]] == "answered"
        assert all(read[n] != "answered" for n in NUMBERS[1:4])
