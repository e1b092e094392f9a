"""Server processes the benchmarks start, each as ``python -m servers.NAME`` in ``bench/``.

- :mod:`servers.stream`: streams pre-encoded notification frames flat out;
- :mod:`servers.miniplatform`: a minimal Genesys-shaped REST + WebSocket platform;
- :mod:`servers.fakedriver`: outdial's ``FakePlatform``, publishing on command.

They live in this package, not next to the scripts, so that running every
``bench/*.py`` runs only the benchmarks.
"""
