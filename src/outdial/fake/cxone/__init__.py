"""The fake NICE CXone platform: issuer, discovery, agent sessions long polled, dial-phone.

>>> from outdial.fake.cxone import FakeCxone, Skill
>>> # async with FakeCxone(agents=["3141592"], seed=0) as cxone: ...

:class:`FakeCxone` speaks the contract of ``CXONE.md`` on loopback sockets, for
tests, ``make demo`` and ``outdial fake-server --platform cxone``.

Where to look:

* :mod:`.platform`: the I/O shell, its controls, switches and faults.
* :mod:`.agents`: agents and skills; the agent's state is the agent's (pure).
* :mod:`.calls`: how a contact plays out; DisconnectCode sets (pure).
* :mod:`.sessions`: session ids that rotate on every 200, one queue each (pure).
* :mod:`.faults`: poll and dial fault decisions (pure).
* :mod:`.tokens`: the JWT id token and token lifetimes (pure).
* :mod:`.errors`: error bodies in a switchable format.
* :mod:`.recorded`: what the fake was asked and did.
* :mod:`.control`: the ``/fake/...`` endpoints; :mod:`.server`: the standalone server.
"""

from outdial.fake.cxone.agents import DEFAULT_SKILL_ID, Agent, Skill
from outdial.fake.cxone.calls import (
    BLANK_DISCONNECT_CODES,
    DEFAULT_END_REASONS,
    NAMED_DISCONNECT_CODES,
    Contact,
)
from outdial.fake.cxone.control import FAULT_KINDS
from outdial.fake.cxone.errors import ERROR_FORMATS
from outdial.fake.cxone.platform import DEFAULT_CXONE_AGENTS, MAX_POLL_TIMEOUT, FakeCxone
from outdial.fake.cxone.recorded import (
    Recorded,
    RecordedCall,
    RecordedDial,
    RecordedDisposition,
    RecordedPoll,
    RecordedRequest,
    RecordedSession,
    RecordedToken,
)
from outdial.fake.cxone.server import cxone_banner, print_cxone_banner, serve_cxone
from outdial.fake.cxone.tokens import ID_TOKEN_KEY, decode_jwt

__all__ = [
    "BLANK_DISCONNECT_CODES",
    "DEFAULT_CXONE_AGENTS",
    "DEFAULT_END_REASONS",
    "DEFAULT_SKILL_ID",
    "ERROR_FORMATS",
    "FAULT_KINDS",
    "ID_TOKEN_KEY",
    "MAX_POLL_TIMEOUT",
    "NAMED_DISCONNECT_CODES",
    "Agent",
    "Contact",
    "FakeCxone",
    "Recorded",
    "RecordedCall",
    "RecordedDial",
    "RecordedDisposition",
    "RecordedPoll",
    "RecordedRequest",
    "RecordedSession",
    "RecordedToken",
    "Skill",
    "cxone_banner",
    "decode_jwt",
    "print_cxone_banner",
    "serve_cxone",
]
