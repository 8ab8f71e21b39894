"""The bearer token of the control API, and the checks every route shares."""

from __future__ import annotations

import hmac

from aiohttp import web

from webtv.status import ChannelView, MutationsOff


def bearer_credentials(header: str) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header as the client's bytes, or None
    for another scheme. The scheme is matched in any case (RFC 7235). aiohttp decodes header
    bytes as UTF-8 with surrogateescape, so bytes that are not UTF-8 come back as sent."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip().encode("utf-8", "surrogateescape")


def authorize(channel: ChannelView, request: web.Request) -> None:
    """Raise 401 unless the request carries the configured token (403 when none is configured)."""
    try:
        token = channel.api_token()
    except MutationsOff as exc:
        raise web.HTTPForbidden(text=f"{exc}\n") from None
    given = bearer_credentials(request.headers.get("Authorization", ""))
    if given is None or not hmac.compare_digest(given, token.encode("utf-8", "surrogateescape")):
        raise web.HTTPUnauthorized(text="a valid 'Authorization: Bearer <token>' header is required\n",
                                   headers={"WWW-Authenticate": "Bearer"})


def clip_id_of(request: web.Request) -> int:
    """The ``{id}`` of a clip route; 400 when it is not a positive integer."""
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise web.HTTPBadRequest(text=f"clip id must be a positive integer, not {raw[:40]!r}\n")
    return int(raw)
