"""Where a CXone tenant's API lives: ``/.well-known/cxone-configuration``.

The issuer is the only URL a user gives. The tenant id comes from the
configuration or from the ``tenantId`` claim of the id_token; the discovery
document then names ``api_endpoint``, and every API call goes to
``{api_endpoint}/InContactAPI/services/{version}/...`` (hosts are never built
by hand).
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from outdial.platforms.base import AuthError, PlatformError, RetryableError
from outdial.platforms.cxone import wire
from outdial.platforms.cxone.errors import error_from_response

__all__ = ["api_base", "discover"]


def api_base(api_endpoint: str, api_version: str) -> str:
    """The root of every ACD API call for ``api_version``."""
    return f"{api_endpoint.rstrip('/')}/InContactAPI/services/{api_version}"


async def discover(
    http: httpx.AsyncClient, issuer: str, tenant_id: str | None
) -> wire.CxoneConfiguration:
    """The tenant's discovery document; raises when there is no tenant id to ask with."""
    if not tenant_id:
        raise AuthError(
            "no tenant id: the token's id_token has no tenantId claim; set platform.tenant_id"
        )
    url = f"{issuer.rstrip('/')}/.well-known/cxone-configuration"
    try:
        response = await http.get(url, params={"tenantId": tenant_id}, auth=None)
    except httpx.TransportError as exc:
        raise RetryableError(f"discovery at {url} failed: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise error_from_response(response, what="discovery")
    try:
        return wire.CxoneConfiguration.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise PlatformError(
            f"discovery: unexpected answer, no api_endpoint ({type(exc).__name__})",
            status=response.status_code,
            code="outdial.unexpected.answer",
        ) from None
