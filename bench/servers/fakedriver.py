"""The fake platform in its own process, publishing presence events at a fixed rate on command.

Used by ``bench/latency.py`` so that the fake's own work (publishing, answering
REST, playing out calls) never shares an event loop with the client measured.

Prints one JSON line when ready (``api_url``, ``login_url``, ``client_id``,
``client_secret``, ``agents``), then reads commands on standard input:

- ``go RATE COUNT SHARE``: publish COUNT presence events paced to RATE per
  second (on an absolute schedule, so a late event does not shift the ones
  after it), a SHARE of them ``Available`` (round-robin over the agents) and
  the rest ``Away``; then print one JSON line of what was published;
- ``stats``: print ``{"calls_accepted": N}``;
- ``quit``: stop.

Calls are answered, short (ring and talk 50-100 ms) and the agent's wrap-up
never ends, so the fake itself never makes an agent Available: every trigger
comes from the schedule.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from _common import is_trigger, presence_body, stream_users
from outdial.fake import CallTiming, FakePlatform, Outcome


async def _publish(
    fake: FakePlatform, agents: list[str], rate: float, count: int, share: float
) -> dict[str, Any]:
    start = anyio.current_time()
    delivered = 0
    most_late = 0.0
    triggers = others = 0
    for i in range(count):
        due = start + i / rate
        delay = due - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            most_late = max(most_late, -delay)
        if is_trigger(i, share):
            user, presence = agents[triggers % len(agents)], "Available"
            triggers += 1
        else:
            user, presence = agents[others % len(agents)], "Away"
            others += 1
        delivered += await fake.publish(
            f"v2.users.{user}.presence", presence_body(presence, float(i))
        )
    took = anyio.current_time() - start
    return {
        "published": count,
        "delivered": delivered,
        "seconds": took,
        "rate": count / took if took > 0 else 0.0,
        "most_late": most_late,
    }


async def main(args: argparse.Namespace) -> None:
    """Run the fake until ``quit``."""
    agents = stream_users(args.agents, "lat")
    timing = CallTiming(ring=(0.05, 0.1), talk=(0.05, 0.1), wrapup=86400.0, dial=0.01)
    async with FakePlatform(
        agents,
        seed=args.seed,
        timing=timing,
        outcome_weights={Outcome.ANSWERED: 1.0},
    ) as fake:
        ready = {
            "api_url": fake.api_url,
            "login_url": fake.login_url,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "agents": agents,
        }
        print(json.dumps(ready), flush=True)
        stdin = anyio.wrap_file(sys.stdin)
        while True:
            line = (await stdin.readline()).split()
            if not line or line[0] == "quit":
                return
            if line[0] == "go":
                stats = await _publish(fake, agents, float(line[1]), int(line[2]), float(line[3]))
                print(json.dumps(stats), flush=True)
            elif line[0] == "stats":
                accepted = len(fake.recorded.accepted_calls)
                print(json.dumps({"calls_accepted": accepted}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    anyio.run(main, parser.parse_args())
