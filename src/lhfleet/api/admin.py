"""Token routes: who am I (any token), and managing tokens (admin tokens only)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter

from lhfleet.api.auth import AdminToken, State, Token
from lhfleet.api.schemas import QuotaIn, TokenRequest, error_responses
from lhfleet.api.tokens import check_quota, issue_token, token_document

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["tokens"])


@router.get("/me", responses=error_responses())
def whoami(token: Token) -> dict[str, Any]:
    """Return the request's own token: its name, rights and quota."""
    return token_document(token)


@router.get("/tokens", responses=error_responses(403))
def list_tokens(_admin: AdminToken, state: State) -> dict[str, Any]:
    """List every token, revoked ones included."""
    return {"tokens": [token_document(t) for t in state.tokens.list_tokens()]}


@router.post("/tokens", status_code=201, responses=error_responses(400, 403, 413))
def create_token(body: TokenRequest, admin: AdminToken, state: State) -> dict[str, Any]:
    """Create a token; the response contains its secret, never shown again."""
    quota = body.quota.quota()
    check_quota(quota)
    token, secret = issue_token(state.tokens, body.name, body.admin, quota)
    logger.info("token %s created by admin token %s", token.id, admin.id)
    return {**token_document(token), "secret": secret}


@router.post("/tokens/{name}/revoke", responses=error_responses(403, 404))
def revoke_token(name: str, admin: AdminToken, state: State) -> dict[str, Any]:
    """Revoke a token: its requests get 401 from now on."""
    token = state.tokens.revoke(name, time.time())
    state.cache.forget(token.id)
    logger.info("token %s revoked by admin token %s", token.id, admin.id)
    return token_document(token)


@router.put("/tokens/{name}/quota", responses=error_responses(400, 403, 404, 413))
def set_quota(
    name: str, body: QuotaIn, admin: AdminToken, state: State
) -> dict[str, Any]:
    """Replace a token's quotas; null is no limit."""
    quota = body.quota()
    check_quota(quota)
    token = state.tokens.set_quota(name, quota)
    state.cache.forget(token.id)
    logger.info("quota of token %s set by admin token %s", token.id, admin.id)
    return token_document(token)
