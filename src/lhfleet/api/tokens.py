"""Issuing and checking API tokens; the store keeps only their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from lhfleet.errors import InvalidSettingError
from lhfleet.ports import ApiToken, Quota, TokenStore

PREFIX = "lhf_"
NAME_LENGTH = 100
MAX_QUOTA = 1_000_000_000
"""Largest quota value: a bound below what the token store's 64-bit integer
columns hold, and far above any useful quota."""


def new_secret() -> str:
    """Return a new token secret: the prefix and 256 random bits, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a secret, as the token store keeps it.

    A plain hash suffices because secrets are 256 random bits: there is no
    dictionary to try, so a slow password hash would only slow every request.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue_token(
    store: TokenStore, name: str, admin: bool = False, quota: Quota | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is shown only once."""
    name = name.strip()
    if not name or len(name) > NAME_LENGTH or not name.isprintable():
        raise InvalidSettingError(
            f"The token name {name[:120]!r} is invalid; use 1 to {NAME_LENGTH} "
            "printable characters, such as ci-main."
        )
    check_quota(quota or Quota())
    secret = new_secret()
    token = store.create_token(
        name, hash_secret(secret), admin, quota or Quota(), time.time()
    )
    return token, secret


def check_quota(quota: Quota) -> None:
    """Raise InvalidSettingError for a quota below 1 or above MAX_QUOTA.

    None is no limit.
    """
    for name, value in (
        ("max_running_jobs", quota.max_running_jobs),
        ("max_runs_per_day", quota.max_runs_per_day),
    ):
        if value is not None and not 1 <= value <= MAX_QUOTA:
            raise InvalidSettingError(
                f"{name} is {value}; use a whole number from 1 to {MAX_QUOTA}, "
                "or no limit."
            )


def authenticate(store: TokenStore, secret: str) -> ApiToken | None:
    """Return the active token whose secret this is, or None."""
    if not secret.startswith(PREFIX):
        return None
    token = store.find_by_hash(hash_secret(secret))
    if token is None or not token.active:
        return None
    return token


def token_document(token: ApiToken) -> dict[str, Any]:
    """Return a token as the API shows it: never its secret or hash."""
    return {
        "id": token.id,
        "name": token.name,
        "admin": token.admin,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
        "quota": {
            "max_running_jobs": token.quota.max_running_jobs,
            "max_runs_per_day": token.quota.max_runs_per_day,
        },
    }
