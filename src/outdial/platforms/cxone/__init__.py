"""NICE CXone: agent sessions long polled per agent, ``dial-phone`` on a manual outbound skill.

The contract is ``CXONE.md`` (shared with the team); :mod:`.wire` holds the
platform's message shapes once, for the client, the fake and ``outdial check``.
"""
