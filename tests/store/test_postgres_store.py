"""What only the PostgreSQL store does: connecting, schemas, ``open_store`` URLs.

The contract itself (and the replica races) runs on both backends in
``test_store_contract.py``.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (outdial[postgres])")

from psycopg import sql  # noqa: E402

from outdial.store import ContactRow, StoreError, open_store  # noqa: E402
from outdial.store.postgres import PostgresStore  # noqa: E402

pytestmark = pytest.mark.postgres


@pytest.mark.anyio
async def test_open_store_postgres_url_with_search_path(
    postgres_url: str, postgres_schema: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(postgres_schema)))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options={quote(f'-csearch_path={postgres_schema}')}"
    async with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        assert await store.import_contacts([ContactRow("a", "+441212345601")]) == 1
    with psycopg.connect(postgres_url) as conn:
        cur = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.contacts").format(sql.Identifier(postgres_schema))
        )
        assert cur.fetchone() == (1,)


@pytest.mark.anyio
async def test_tables_survive_reconnecting(postgres_url: str, postgres_schema: str) -> None:
    first = await PostgresStore.connect(postgres_url, schema=postgres_schema)
    await first.import_contacts([ContactRow("a", "+441212345601")])
    await first.aclose()
    await first.aclose()  # idempotent
    second = await PostgresStore.connect(postgres_url, schema=postgres_schema)
    assert [c.phone_number for c in await second.contacts()] == ["+441212345601"]
    await second.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await second.contacts()


@pytest.mark.anyio
async def test_unreachable_server_is_a_clear_store_error() -> None:
    url = "postgresql://outdial:s3cret@127.0.0.1:1/nothing?connect_timeout=2"
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as caught:
        await PostgresStore.connect(url)
    assert "s3cret" not in str(caught.value)


@pytest.mark.anyio
async def test_bad_schema_name_is_refused(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="schema name"):
        await PostgresStore.connect(postgres_url, schema="x; DROP TABLE y")
