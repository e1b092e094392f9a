"""PostgreSQL store for replicas (not in this release)."""

from __future__ import annotations

from outdial.store.base import Store, StoreError

__all__ = ["PostgresStore"]


class PostgresStore:
    """Placeholder until the PostgreSQL store lands."""

    @classmethod
    async def connect(cls, url: str) -> Store:
        """Always fails for now, with a message that says what to use instead."""
        raise StoreError(
            "PostgreSQL store arrives with replicas; use sqlite:///PATH for [store] url"
        )
