"""The typed route table both fakes resolve paths with: typed parameters, 404 and 405."""

from __future__ import annotations

import pytest

from outdial.fake.common.routes import RouteMatch, Routes


def _table() -> Routes[str]:
    routes: Routes[str] = Routes()
    routes.add("GET", "/users/{user_id}", "get-user")
    routes.add("DELETE", "/users/{user_id}", "delete-user")
    routes.add("GET", "/contacts/{contact_id:int}/legs/{leg}", "leg")
    routes.add("get", "/plain", "plain")
    return routes


def _match(found: RouteMatch[str] | int) -> RouteMatch[str]:
    assert not isinstance(found, int), found
    return found


def test_a_parameter_is_one_segment_url_decoded_and_a_string_by_default() -> None:
    found = _match(_table().resolve("GET", "/users/a%20b"))
    assert found.handler == "get-user"
    assert found.params == {"user_id": "a b"}
    assert found.route.pattern == "/users/{user_id}"
    assert _table().resolve("GET", "/users/a/b") == 404


def test_an_int_parameter_takes_digits_only_and_arrives_as_an_int() -> None:
    found = _match(_table().resolve("GET", "/contacts/700001/legs/agent"))
    assert found.params == {"contact_id": 700001, "leg": "agent"}
    assert _table().resolve("GET", "/contacts/seven/legs/agent") == 404


def test_the_method_picks_among_routes_of_one_path_case_insensitively() -> None:
    assert _match(_table().resolve("delete", "/users/u1")).handler == "delete-user"
    assert _match(_table().resolve("GET", "/plain")).handler == "plain"


def test_a_known_path_with_another_method_is_405_and_an_unknown_path_404() -> None:
    routes = _table()
    assert routes.resolve("POST", "/users/u1") == 405
    assert routes.resolve("HEAD", "/plain") == 405
    assert routes.resolve("GET", "/nowhere") == 404
    assert routes.resolve("GET", "/plain/") == 404


def test_the_first_matching_route_wins() -> None:
    routes: Routes[str] = Routes()
    routes.add("GET", "/calls/{conversation_id}", "by-id")
    routes.add("GET", "/calls/recent", "recent")
    assert _match(routes.resolve("GET", "/calls/recent")).handler == "by-id"
    assert [r.handler for r in routes] == ["by-id", "recent"]
    assert len(routes) == 2


def test_a_bad_pattern_is_refused_when_added() -> None:
    routes: Routes[str] = Routes()
    with pytest.raises(ValueError, match="unknown parameter type"):
        routes.add("GET", "/x/{n:float}", "x")
    with pytest.raises(ValueError, match="appears twice"):
        routes.add("GET", "/x/{n}/{n}", "x")


def test_literal_parts_of_a_pattern_are_not_regex() -> None:
    routes: Routes[str] = Routes()
    routes.add("GET", "/a.b/{x}", "dotted")
    assert routes.resolve("GET", "/aXb/1") == 404
    assert _match(routes.resolve("GET", "/a.b/1")).params == {"x": "1"}
