"""Accounts, sign-in with lockout, API tokens, and turning a user into a Principal."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from tagwatch.access import repository
from tagwatch.access.audit import record
from tagwatch.access.models import ApiToken, User
from tagwatch.access.passwords import hash_password, needs_rehash, verify_password
from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.access.roles import permissions_for, unknown_roles
from tagwatch.db.base import utcnow

TOKEN_PREFIX = "tw_"
# Writing last_used_at on every call would turn each telemetry post into an extra UPDATE.
TOKEN_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class SignInRefused(Exception):
    """Sign-in failed. The message is safe to show: it never says which part was wrong."""


def principal_for(user: User, token_scopes: Iterable[str] | None = None) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=frozenset(user.roles),
        permissions=permissions_for(user.roles),
        team_id=user.team_id,
        delivery_unit_code=user.delivery_unit_code,
        region_code=user.region_code,
        force_code=user.force_code,
        token_scopes=None if token_scopes is None else frozenset(token_scopes),
    )


def create_user(
    session: Session,
    *,
    username: str,
    roles: list[str],
    display_name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    team_name: str | None = None,
    delivery_unit_code: str | None = None,
    region_code: str | None = None,
    force_code: str | None = None,
) -> User:
    if not username or not username.strip():
        raise ValueError("username: must not be empty")
    if not roles:
        raise ValueError("roles: give at least one role")
    unknown = unknown_roles(roles)
    if unknown:
        raise ValueError(f"roles: unknown role(s) {', '.join(unknown)}")
    if repository.user_by_username(session, username) is not None:
        raise ValueError(f"username: {username!r} is already taken")
    team = (
        repository.get_or_create_team(session, team_name, delivery_unit_code) if team_name else None
    )
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        password_hash=hash_password(password) if password else None,
        roles=sorted(set(roles)),
        team_id=team.id if team else None,
        delivery_unit_code=delivery_unit_code or (team.delivery_unit_code if team else None),
        region_code=region_code,
        force_code=force_code,
        active=True,
        failed_logins=0,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    lockout_threshold: int,
    lockout: dt.timedelta,
    now: dt.datetime | None = None,
) -> User:
    """The user if the password is right and the account usable; counts failures and locks."""
    now = now or utcnow()
    user = repository.user_by_username(session, username)
    if user is None or not user.active:
        # Spend the same time as a real check so response times do not reveal usernames.
        verify_password(_dummy_hash(), password)
        raise SignInRefused("Enter a correct username and password")
    if user.locked_until is not None and user.locked_until > now:
        raise SignInRefused("This account is locked after repeated failed sign-ins; try later")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= lockout_threshold:
            user.locked_until = now + lockout
            user.failed_logins = 0
            record(session, None, "account.locked", subject_type="user", subject_id=user.id)
        raise SignInRefused("Enter a correct username and password")
    user.failed_logins = 0
    user.locked_until = None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    user: User,
    name: str,
    scopes: list[str],
    *,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """A new token; the secret is returned once and only its hash is stored."""
    if not scopes:
        raise ValueError("scopes: give at least one permission")
    unknown = sorted(set(scopes) - set(PERMISSIONS))
    if unknown:
        raise ValueError(f"scopes: unknown permission(s) {', '.join(unknown)}")
    beyond = sorted(set(scopes) - permissions_for(user.roles))
    if beyond:
        raise ValueError(f"scopes: {user.username} does not hold {', '.join(beyond)}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise ValueError(f"token: no token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def principal_for_token(session: Session, secret: str) -> Principal | None:
    """The caller behind a bearer secret, or None if unknown, revoked, expired or inactive."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = repository.token_by_hash(session, hash_token(secret))
    now = utcnow()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_RESOLUTION:
        token.last_used_at = now
    return principal_for(token.user, token_scopes=token.scopes)


# What a signed-in caller's Principal is made of, by primary key.
_CALLER_ACCOUNT = select(
    User.id,
    User.username,
    User.display_name,
    User.roles,
    User.team_id,
    User.delivery_unit_code,
    User.region_code,
    User.force_code,
    User.active,
).where(User.id == bindparam("user_id"))


def caller_account(session: Session, user_id: int) -> tuple[Any, ...] | None:
    """The account columns a Principal is made of, as a plain row read in the session's
    transaction (None if there is no such user): two are equal when nothing that decides what
    the caller may do or see has changed."""
    row = session.connection().execute(_CALLER_ACCOUNT, {"user_id": user_id}).first()
    return None if row is None else tuple(row)


def principal_for_account(account: tuple[Any, ...]) -> Principal | None:
    """`principal_for` from `caller_account`'s row; None for a deactivated account."""
    user_id, username, display_name, roles, team_id, unit, region, force, active = account
    if not active:
        return None
    return Principal(
        user_id=user_id,
        username=username,
        display_name=display_name,
        roles=frozenset(roles),
        permissions=permissions_for(roles),
        team_id=team_id,
        delivery_unit_code=unit,
        region_code=region,
        force_code=force,
    )


def upsert_identity_user(
    session: Session, *, username: str, display_name: str, email: str | None, roles: list[str]
) -> User:
    """The local record of a user signed in by the identity provider, whose groups set roles.

    Scope (team, delivery unit, force) stays as an administrator set it locally.
    """
    user = repository.user_by_username(session, username)
    if user is None:
        return create_user(
            session, username=username, roles=roles, display_name=display_name, email=email
        )
    if not user.active:
        raise SignInRefused("This account is disabled")
    user.display_name = display_name
    user.email = email
    user.roles = sorted(set(roles))
    return user


def unlock_user(user: User) -> None:
    user.locked_until = None
    user.failed_logins = 0


def set_active(user: User, active: bool) -> None:
    """Deactivating ends the user's sessions and tokens at their next request."""
    user.active = active
