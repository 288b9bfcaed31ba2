"""Bearer tokens on every ``/api`` route, and the dashboard's cookie.

A request carries its token in ``Authorization: Bearer TOKEN``. The
dashboard's login stores the same token in an HttpOnly, SameSite=Strict
cookie; a request that relies on the cookie to change something must also
send ``X-Requested-With: lhfleet``, which a form on another site cannot.
Tokens are never logged: uvicorn's access log has no headers, and the API
takes no token in a query string.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from lhfleet.api.state import ServerState
from lhfleet.errors import AuthenticationError, PermissionDenied
from lhfleet.ports import ApiToken

COOKIE = "lhfleet_token"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "lhfleet"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.lhfleet
    return state


State = Annotated[ServerState, Depends(server_state)]


def token_secret(request: Request) -> tuple[str | None, bool]:
    """Return the request's token and whether it came from the dashboard cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "The Authorization header is not 'Bearer TOKEN'. Send the token "
                "that `lhfleet token create NAME` printed."
            )
        return value.strip(), False
    return request.cookies.get(COOKIE), True


async def current_token(request: Request, state: State) -> ApiToken:
    """Return the request's active token; raise AuthenticationError otherwise.

    A token checked in the last few seconds is taken from the cache; a miss
    reads the token store in a worker thread.
    """
    secret, from_cookie = token_secret(request)
    if not secret:
        raise AuthenticationError(
            "This request has no token. Send 'Authorization: Bearer TOKEN'; an "
            "admin creates tokens with `lhfleet token create NAME`."
        )
    token = state.cache.cached(secret)
    if token is None:
        token = await run_in_threadpool(state.cache.authenticate, secret)
    if token is None:
        raise AuthenticationError(
            "The token is unknown or revoked. Ask an admin for a new one "
            "(`lhfleet token create NAME`)."
        )
    unsafe = request.method not in SAFE_METHODS
    if from_cookie and unsafe and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise AuthenticationError(
            "A request that signs in with the dashboard's cookie must send the "
            f"header X-Requested-With: {CSRF_VALUE}; or send the token as a bearer "
            "token."
        )
    return token


Token = Annotated[ApiToken, Depends(current_token)]


async def admin_token(token: Token) -> ApiToken:
    """Return the request's token if it is an admin token; raise PermissionDenied."""
    if not token.admin:
        raise PermissionDenied(
            f"Token {token.name!r} is not an admin token; this route manages tokens "
            "and needs one (`lhfleet token create NAME --admin`)."
        )
    return token


AdminToken = Annotated[ApiToken, Depends(admin_token)]
