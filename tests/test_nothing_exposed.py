"""Nothing exposed: no password in any URL outdial prints or logs, a store only its owner reads,
and a warning for a platform reached over plain HTTP."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from outdial.cli import main
from outdial.config import ConfigError, load_config
from outdial.log import emit, mask_url
from outdial.store import SqliteStore, StoreError, open_store

SECRET = "hunter2"

CONFIG = """
[platform]
kind = "genesys"
api_url = "{api_url}"
login_url = "{login_url}"
client_id = "id"
client_secret = "not-in-the-file-really"

[store]
url = "{store_url}"
"""


def _config(
    tmp_path: Path,
    *,
    store_url: str = "sqlite:///:memory:",
    api_url: str = "https://api.example.test",
    login_url: str = "https://login.example.test",
) -> Path:
    path = tmp_path / "outdial.toml"
    path.write_text(CONFIG.format(api_url=api_url, login_url=login_url, store_url=store_url))
    return path


# -- URL masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://outdial:hunter2@db:5432/dial", "postgresql://outdial:***@db:5432/dial"),
        # An unencoded "@" or "/" in the password must not leave its tail behind.
        ("postgresql://u:hun@ter/2@db/dial", "postgresql://u:***@db/dial"),
        ("postgres://:hunter2@db/dial", "postgres://:***@db/dial"),
        (
            "postgresql://db/dial?sslmode=require&password=hunter2",
            "postgresql://db/dial?sslmode=require&password=***",
        ),
        ("postgresql://outdial@db/dial", "postgresql://outdial@db/dial"),
        ("sqlite:////var/lib/outdial/outdial.db", "sqlite:////var/lib/outdial/outdial.db"),
        (
            "cannot connect to postgresql://a:hunter2@db/x: refused",
            "cannot connect to postgresql://a:***@db/x: refused",
        ),
    ],
)
def test_mask_url_hides_the_password_and_keeps_where(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_config_errors_never_quote_a_store_password(tmp_path: Path) -> None:
    path = _config(tmp_path, store_url=f"mysql://root:{SECRET}@db/outdial")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert SECRET not in str(caught.value)
    assert "mysql://root:***@db/outdial" in str(caught.value)
    assert all(SECRET not in why for _where, why in caught.value.problems)


def test_check_prints_a_bad_store_url_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, store_url=f"mysql://root:{SECRET}@db/outdial")
    assert main(["check", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "root:***@db" in captured.err


def test_log_events_mask_urls_in_strings_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("outdial.test.exposed")
    with caplog.at_level(logging.INFO, logger="outdial.test.exposed"):
        emit(logger, "store.failed", url=f"postgresql://u:{SECRET}@db/x")
        emit(logger, "store.failed", error=StoreError(f"at postgresql://u:{SECRET}@db/x: gone"))
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.outdial)  # type: ignore[attr-defined]
        assert "postgresql://u:***@db/x" in record.getMessage()


@pytest.mark.anyio
async def test_postgres_connect_error_masks_the_password() -> None:
    pytest.importorskip("psycopg")
    from outdial.store.postgres import PostgresStore

    # Port 1 on loopback: refused at once, so the error is about that URL.
    with pytest.raises(StoreError) as caught:
        await PostgresStore.connect(f"postgresql://outdial:{SECRET}@127.0.0.1:1/dial")
    assert SECRET not in str(caught.value)
    assert "outdial:***@127.0.0.1:1" in str(caught.value)


@pytest.mark.postgres
def test_contacts_import_prints_the_store_url_without_its_password(
    tmp_path: Path, postgres_url: str, postgres_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(postgres_schema)))
    parts = urlsplit(postgres_url)
    # The test server's own password if its URL has one; else one a trust server ignores.
    secret = parts.password or SECRET
    netloc = f"{parts.username or 'postgres'}:{secret}@{parts.hostname}:{parts.port or 5432}"
    query = f"options=-csearch_path%3D{postgres_schema}"
    url = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    config = _config(tmp_path, store_url=url)
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("u1,+441212345601\n")

    assert main(["contacts", "import", "--config", str(config), str(contacts)]) == 0
    out = capsys.readouterr().out
    assert "imported 1 contacts" in out
    assert secret not in out
    assert f":***@{parts.hostname}" in out


# -- SQLite file modes -------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.anyio
async def test_sqlite_store_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "outdial.db"
    old = os.umask(0o022)  # the usual default, under which SQLite alone makes 0644 files
    try:
        async with open_store(f"sqlite:///{db}") as store:
            await store.import_contacts([])
            await store.add_do_not_call(["+441212345601"])  # a write: the WAL has content
            files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        os.umask(old)


@pytest.mark.anyio
async def test_sqlite_store_left_world_readable_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "outdial.db"
    sqlite3.connect(db).close()  # as a release before this one left it
    db.chmod(0o644)
    store = SqliteStore(db)
    try:
        assert _mode(db) == 0o640  # other users lose access; the group is the operator's
    finally:
        await store.aclose()


# -- plain-http platform URLs ------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_plain_http_platform_url_off_loopback_warns_once_naming_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = f"dialer-{uuid.uuid4().hex[:8]}.example.test"  # warned once per process: a new one
    path = _config(tmp_path, api_url=f"http://{host}", login_url=f"https://{host}")
    with caplog.at_level(logging.WARNING, logger="outdial"):
        load_config(path)
        load_config(path)  # a reload (SIGHUP) does not repeat it
    warned = _warnings(caplog)
    assert len(warned) == 1, warned
    assert "platform.api_url" in warned[0]
    assert host in warned[0]
    assert "login_url" not in warned[0]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"]
)
def test_plain_http_on_loopback_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    path = _config(tmp_path, api_url=url, login_url=url)
    with caplog.at_level(logging.WARNING, logger="outdial"):
        load_config(path)
    assert _warnings(caplog) == []
