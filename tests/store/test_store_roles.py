"""The Store's roles: each method in exactly one, and the SQL store is every one of them."""

from __future__ import annotations

import inspect

from outdial.store import (
    AgentLeaseStore,
    CallStore,
    ClaimStore,
    ContactStore,
    DoNotCallStore,
    Store,
)
from outdial.store.sql import SqlStore

ROLES = (ClaimStore, CallStore, ContactStore, DoNotCallStore, AgentLeaseStore)


def methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if inspect.iscoroutinefunction(value)}


def test_every_store_method_is_in_exactly_one_role() -> None:
    seen: dict[str, str] = {}
    for role in ROLES:
        for name in methods(role):
            assert name not in seen, f"{name} is in {seen[name]} and {role.__name__}"
            seen[name] = role.__name__
    assert methods(Store) == {"aclose"}  # the rest it has from its roles
    assert all(role in Store.__mro__ for role in ROLES)


def test_the_sql_store_implements_every_role_with_the_same_signatures() -> None:
    for role in (*ROLES, Store):
        for name in methods(role):
            ours = inspect.signature(getattr(SqlStore, name))
            assert ours == inspect.signature(getattr(role, name)), f"{role.__name__}.{name}"
    public = {n for n in vars(SqlStore) if not n.startswith("_")}
    # Besides the roles' operations: the health and what the store says of itself.
    assert public == set().union(*(methods(r) for r in ROLES)) | {"aclose", "answers_inline"}
    assert "answers_inline" in vars(Store)
