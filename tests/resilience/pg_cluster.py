"""A private PostgreSQL cluster for tests that stop, restart or break their database.

The shared test server (``tests/conftest.py``) must never be restarted, so
these tests run their own: ``initdb`` into a temporary directory and
``pg_ctl`` on a free loopback port, with PostgreSQL's own binaries
(``/usr/lib/postgresql/*/bin``, ``pg_config --bindir``, or
``OUTDIAL_PG_BINDIR``). ``initdb`` and the server refuse to run as root, so
as root both run as the ``postgres`` user (``runuser``), in a directory it
owns. Without the binaries (or such a user) the tests are skipped, saying
why; with ``OUTDIAL_REQUIRE_POSTGRES=1`` (CI) they fail instead.

Every control is async (``anyio.run_process``): the daemon under test keeps
running while the server is restarted beside it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

#: Where Debian and Ubuntu put each major version's binaries.
_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
#: The server's settings: loopback only, and no fsync (the machine does not
#: crash in these tests; an immediate shutdown still keeps every commit).
_SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"


def _bindir() -> Path | None:
    given = os.environ.get("OUTDIAL_PG_BINDIR")
    candidates = [Path(given)] if given else []
    candidates += sorted(
        Path("/").glob(_DEBIAN_BINDIRS.lstrip("/")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True
            )
            candidates.append(Path(out.stdout.strip()))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for path in candidates:
        if (path / "pg_ctl").is_file() and (path / "initdb").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when PostgreSQL is required (CI)."""
    if os.environ.get("OUTDIAL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (OUTDIAL_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


@dataclass
class Cluster:
    """One private PostgreSQL server: its directory, port and how to run its tools."""

    bindir: Path
    root: Path
    port: int
    run_as: Sequence[str]

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """A URL to ``database`` on this server (trust authentication)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, tool: str, *args: str) -> list[str]:
        return [*self.run_as, str(self.bindir / tool), *args]

    def _pg_ctl(self, action: str, *args: str) -> list[str]:
        # -l keeps the server's output in a file, not on the test's terminal.
        log = str(self.root / "server.log")
        options = f"-p {self.port} -k {self.root} {_SERVER_OPTIONS}"
        return self._cmd(
            "pg_ctl", action, "-D", str(self.data), "-l", log, "-w", *args, "-o", options
        )

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        await anyio.run_process(self._pg_ctl("start"))

    async def ensure_running(self) -> None:
        """Start the server if it is not running (a test that failed may have left it down)."""
        status = await anyio.run_process(
            self._cmd("pg_ctl", "status", "-D", str(self.data)), check=False
        )
        if status.returncode != 0:
            await self.start()

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server (``smart``, ``fast`` or ``immediate``) and wait until it is down."""
        await anyio.run_process(self._pg_ctl("stop", "-m", mode))

    async def restart(self, mode: str = "fast") -> None:
        """Restart the server and wait until it accepts connections again."""
        await anyio.run_process(self._pg_ctl("restart", "-m", mode))

    async def sql(self, query: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run ``query`` on a connection of its own; its rows (if any)."""
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self.url(database), autocommit=True
        ) as conn:
            cursor = await conn.execute(query)
            return list(await cursor.fetchall()) if cursor.description else []

    async def backends(self, database: str, application_name: str = "outdial") -> list[int]:
        """The process ids of the client backends ``application_name`` has on ``database``."""
        rows = await self.sql(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
            f" AND datname = '{database}' AND application_name = '{application_name}'"
        )
        return [int(str(row[0])) for row in rows]

    async def terminate(self, database: str, application_name: str = "outdial") -> int:
        """``pg_terminate_backend`` every backend of ``application_name``; how many there were."""
        rows = await self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND application_name = '{application_name}'"
        )
        return len(rows)


def make_cluster() -> Cluster:
    """initdb and start a private cluster (skipping or failing when that cannot be done).

    Blocking (it runs once, before the tests that use the cluster).
    """
    bindir = _bindir()
    if bindir is None:
        unavailable(
            "no PostgreSQL server binaries (pg_ctl, initdb) found in "
            f"{_DEBIAN_BINDIRS}, pg_config --bindir or on PATH; set OUTDIAL_PG_BINDIR"
        )
        raise AssertionError("unreachable")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="outdial-pg-"))
    if os.geteuid() == 0:
        # The server refuses to run as root: run it as postgres, in a directory it owns.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            unavailable("running as root and there is no postgres user to run the server as")
            raise AssertionError("unreachable") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(root)
            unavailable("running as root and runuser is missing (util-linux)")
        run_as = [str(runuser), "-u", "postgres", "--"]
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = Cluster(bindir, root, _free_port(), run_as)
    initdb = cluster._cmd(
        "initdb",
        "-D",
        str(cluster.data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
    )
    try:
        subprocess.run(initdb, check=True, capture_output=True)
        subprocess.run(cluster._pg_ctl("start"), check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
        pytest.fail(f"could not start a private PostgreSQL with {bindir}: {output}")
    return cluster


def remove_cluster(cluster: Cluster) -> None:
    """Stop the server (if it runs) and delete its directory (blocking)."""
    stop = cluster._cmd("pg_ctl", "stop", "-D", str(cluster.data), "-m", "immediate")
    subprocess.run(stop, check=False, capture_output=True)
    shutil.rmtree(cluster.root, ignore_errors=True)
