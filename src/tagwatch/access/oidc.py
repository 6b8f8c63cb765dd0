"""OpenID Connect sign-in (authorisation code flow with PKCE) for production.

The identity provider is found from its discovery document. The id_token is checked against
the provider's published keys (RS256 or ES256), issuer, audience, expiry and the nonce this
sign-in sent. Identity-provider groups become roles through `oidc_group_roles` in settings;
a user whose groups map to no role is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tagwatch.access.roles import unknown_roles
from tagwatch.access.sessions import RequestSession
from tagwatch.settings import Settings

ALLOWED_ALGORITHMS = ("RS256", "ES256")
HTTP_TIMEOUT_SECONDS = 10.0
CLOCK_LEEWAY_SECONDS = 60
_SESSION_KEY = "oidc"


class OidcError(Exception):
    """Sign-in through the identity provider failed; the message is safe to show."""


@dataclass(frozen=True)
class OidcIdentity:
    subject: str
    username: str
    display_name: str
    email: str | None
    groups: list[str]
    roles: list[str]


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_discovery_url and settings.oidc_client_id)


def roles_for_groups(groups: list[str], group_roles: dict[str, list[str]]) -> list[str]:
    """The roles the settings give these groups; a mapping naming an unknown role is an error."""
    roles = {role for group in groups for role in group_roles.get(group, [])}
    unknown = unknown_roles(roles)
    if unknown:
        raise OidcError(f"oidc_group_roles: unknown role(s) {', '.join(unknown)}")
    return sorted(roles)


def _metadata(settings: Settings) -> dict[str, Any]:
    try:
        response = httpx.get(settings.oidc_discovery_url, timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise OidcError("The identity provider could not be reached") from error
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if key not in data:
            raise OidcError(f"The identity provider's discovery document lacks {key}")
    return data


def start(settings: Settings, session: RequestSession, redirect_uri: str) -> str:
    """Where to send the browser; state, nonce and PKCE verifier are kept in the session."""
    metadata = _metadata(settings)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    session.set(_SESSION_KEY, {"state": state, "nonce": nonce, "verifier": verifier})
    target: str = add_params_to_uri(
        metadata["authorization_endpoint"],
        [
            ("response_type", "code"),
            ("client_id", settings.oidc_client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid profile email"),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    return target


def complete(
    settings: Settings, session: RequestSession, redirect_uri: str, params: dict[str, str]
) -> OidcIdentity:
    """Check the callback, exchange the code, verify the id_token and map groups to roles."""
    pending = session.pop(_SESSION_KEY)
    if "error" in params:
        raise OidcError(f"The identity provider refused sign-in: {params['error']}")
    if not pending or params.get("state") != pending.get("state"):
        raise OidcError("The sign-in has expired or did not start here; try again")
    code = params.get("code")
    if not code:
        raise OidcError("The identity provider sent no code")
    metadata = _metadata(settings)
    id_token = _exchange_code(settings, metadata, code, redirect_uri, pending["verifier"])
    claims = _verified_claims(settings, metadata, id_token, pending["nonce"])
    groups = claims.get(settings.oidc_groups_claim) or []
    if not isinstance(groups, list):
        raise OidcError(f"The id_token's {settings.oidc_groups_claim} claim is not a list")
    roles = roles_for_groups([str(g) for g in groups], settings.oidc_group_roles)
    if not roles:
        raise OidcError("Your account has no tagwatch role; ask an administrator")
    return OidcIdentity(
        subject=str(claims["sub"]),
        username=str(claims.get("preferred_username") or claims["sub"]),
        display_name=str(claims.get("name") or claims.get("preferred_username") or claims["sub"]),
        email=claims.get("email"),
        groups=[str(g) for g in groups],
        roles=roles,
    )


def _exchange_code(
    settings: Settings, metadata: dict[str, Any], code: str, redirect_uri: str, verifier: str
) -> str:
    try:
        response = httpx.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(settings.oidc_client_id, settings.oidc_client_secret),
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        token = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise OidcError("The identity provider did not accept the sign-in code") from error
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise OidcError("The identity provider returned no id_token")
    return id_token


def _verified_claims(
    settings: Settings, metadata: dict[str, Any], id_token: str, nonce: str
) -> dict[str, Any]:
    try:
        jwks = httpx.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT_SECONDS).json()
        keys = KeySet.import_key_set(jwks)
        token = jwt.decode(id_token, keys, algorithms=list(ALLOWED_ALGORITHMS))
        jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": settings.oidc_client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (httpx.HTTPError, ValueError, JoseError) as error:
        raise OidcError("The identity provider's id_token did not verify") from error
    return dict(token.claims)
