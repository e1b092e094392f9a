"""How both fakes' login hosts and APIs read credentials off a request."""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl

from outdial.http import Request

__all__ = ["ClientLogin", "basic_credentials", "bearer_token", "client_login", "same_secret"]


@dataclass(frozen=True, slots=True)
class ClientLogin:
    """A token request's form and the client it names (HTTP Basic first, else the form)."""

    form: dict[str, str]
    client_id: str | None
    secret: str | None


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """``(client_id, secret)`` of an ``Authorization: Basic`` header; ``(None, None)`` when
    there is none or it does not decode."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def client_login(request: Request) -> ClientLogin:
    """The form of a token request and its client: Basic credentials win over the form's
    ``client_id``/``client_secret``, as OAuth servers take them."""
    form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
    client_id, secret = basic_credentials(request.header("authorization"))
    if client_id is None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
    return ClientLogin(form, client_id, secret)


def same_secret(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time (None never is)."""
    return secrets.compare_digest((given or "").encode(), expected.encode())


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (None when missing or blank)."""
    scheme, _, value = (request.header("authorization") or "").partition(" ")
    token = value.strip()
    return token if scheme.lower() == "bearer" and token else None
