"""A platform that answers 200 with a body that is not what the API documents.

Every answer the Genesys client reads goes through a model, so a malformed
200 is a classified error naming the field: through the real CLI, one line
and an exit code, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.abc
import pytest

from outdial import cli
from outdial.http import HttpServer, Request, Response

pytestmark = pytest.mark.anyio


async def platform_answering_nonsense(request: Request) -> Response:
    if request.path == "/oauth/token":
        return Response.json(200, {"access_token": "t", "token_type": "bearer", "expires_in": 3600})
    if request.path.startswith("/api/v2/users"):
        return Response.json(200, {"entities": [{"id": "agent-1", "presence": "available"}]})
    return Response.json(404, {"message": "not here", "code": "not.found", "status": 404})


async def test_a_malformed_200_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = HttpServer(platform_answering_nonsense)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_address)[1]
    config = tmp_path / "outdial.toml"
    config.write_text(
        f"""
[platform]
api_url = "http://127.0.0.1:{port}"
login_url = "http://127.0.0.1:{port}"
client_id = "id"
client_secret = "secret"

[[rules]]
name = "next"
topic = "outdial.users.{{userId}}.ready"
users = ["agent-1"]
dial = {{ user = "{{userId}}", contact = "next" }}
"""
    )
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.serve_connection)
        code = await anyio.to_thread.run_sync(
            cli.main, ["check", "--online", "--config", str(config)]
        )
        tg.cancel_scope.cancel()
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "Traceback" not in out
    assert code != 0
    lines = [line for line in out.splitlines() if "presence" in line]
    assert lines, out
    [line] = lines
    assert "unexpected answer from the platform" in line
    assert "entities.0.presence" in line  # the field that was wrong
