"""A small OpenID Connect provider for tests: discovery, authorise, token (RS256) and JWKS.

It checks what a real provider checks (client credentials, redirect URI, PKCE verifier,
single-use codes), so the client under test is held to the protocol, not to a stub.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "tagwatch"
CLIENT_SECRET = "provider-test-secret"


@dataclass
class ProviderBehaviour:
    """What the next sign-in looks like, set by each test."""

    username: str = "jo.bloggs"
    groups: list[str] = field(default_factory=lambda: ["em-practitioners"])
    sign_with_unpublished_key: bool = False
    wrong_nonce: bool = False
    wrong_audience: bool = False


class LocalProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "signing-1"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": "signing-1"})
        self.behaviour = ProviderBehaviour()
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.issuer = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, args=([self._sock],), daemon=True)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the local identity provider did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": params["nonce"],
            "redirect_uri": params["redirect_uri"],
            "challenge": params["code_challenge"],
        }
        query = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)  # codes are single-use
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "reason": "pkce"}, status_code=400)
        return JSONResponse(
            {"access_token": "opaque", "token_type": "Bearer", "id_token": self._id_token(grant)}
        )

    def _id_token(self, grant: dict[str, str]) -> str:
        behaviour = self.behaviour
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"subject-{behaviour.username}",
            "aud": "someone-else" if behaviour.wrong_audience else CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": "not-the-nonce" if behaviour.wrong_nonce else grant["nonce"],
            "preferred_username": behaviour.username,
            "name": "Jo Bloggs",
            "email": "jo.bloggs@example.org",
            "groups": behaviour.groups,
        }
        key = self.rogue_key if behaviour.sign_with_unpublished_key else self.key
        return jwt.encode({"alg": "RS256", "kid": "signing-1"}, claims, key)
