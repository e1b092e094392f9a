"""What the fake Genesys platform and the fake CXone share.

* :mod:`.routes`: the typed route table (method, path pattern with typed
  parameters, handler) both fakes' API and control endpoints resolve with.
* :mod:`.front`: one API port's request cycle: route, REST faults (stall,
  fail, rate limit with ``Retry-After``), the handler, recording.
* :mod:`.control`: the ``/fake/...`` control endpoints' security (loopback
  ``Host``, cross-site checks, the Bearer control token), their request
  cycle and body helpers.
* :mod:`.auth`: Basic client credentials and Bearer tokens, as both login hosts read them.
* :mod:`.changes`: the change signal every ``wait_for`` re-checks on.
* :mod:`.net`: loopback URLs, connection resets (``SO_LINGER`` 0), listeners.
* :mod:`.serve`: the standalone servers' bind check, banner and run loop.
* :mod:`outdial.fake.proxy`: the TCP :class:`~outdial.fake.proxy.FaultProxy`.
"""
