"""Local development signing keys — FOR LOCAL RUNS ONLY, never for production.

`make run` / `make up` generate an Ed25519 key pair on first use under ``.local/dev-keys/``
(git-ignored, per checkout; nothing is committed). Services trust the public half through
``AUTH_JWKS_FILE``; the ``appeals token ...`` command signs dev tokens with the private half.
Routing and notifications each get a dev *service* token there too (``<service>-service.jwt``),
with which they read appellants' particulars from intake. Production configures
``AUTH_JWKS_FILE`` (or its successor) with the identity provider's keys and mounts service tokens
the identity provider issues.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from appeals.platforms import NAMES as PLATFORM_NAMES

if TYPE_CHECKING:
    from appeals_runtime.auth import TokenVerifier

DEV_KEY_ID = "appeals-dev-1"
# Services that read appellants' particulars from intake, each under its own identity, and the
# variable that names its token file.
INTAKE_CLIENTS = {
    "routing": "ROUTING_INTAKE_TOKEN_FILE",
    "notifications": "NOTIFICATIONS_INTAKE_TOKEN_FILE",
}
# The live-help service hands verification codes to notifications under its own identity.
HELP_CODES_SCOPES = ["codes:send"]
# Live help opens appeals for the people it verified as a product surface of every platform
# would (through intake's normal submit path and rules).
HELP_SURFACE_SCOPES = ["appeals:submit", "appeals:read"]
# Routing's desk relays agents' side of live-help chats to the help service.
ROUTING_CHAT_RELAY_SCOPES = ["chats:relay"]
# Long enough for a local run that stays up for days; minted afresh at every start.
SERVICE_TOKEN_TTL_S = 30 * 24 * 3600


def key_dir(state_dir: Path) -> Path:
    return state_dir / "dev-keys"


def ensure(state_dir: Path) -> tuple[Path, Path]:
    """Create the dev key pair once; return (private key PEM, public JWKS) paths."""
    folder = key_dir(state_dir)
    private_path = folder / "dev-signing-key.pem"
    jwks_path = folder / "jwks.json"
    if private_path.exists() and jwks_path.exists():
        return private_path, jwks_path
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(private_path, pem)
    public_jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": DEV_KEY_ID, "alg": "EdDSA", "use": "sig"})
    jwks_path.write_text(json.dumps({"keys": [public_jwk]}, indent=2))
    return private_path, jwks_path


def ensure_secret(state_dir: Path, name: str) -> Path:
    """A random 256-bit secret in a file (hex), created once: e.g. the pseudonym key."""
    path = key_dir(state_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_hex(32).encode())
    return path


def service_token_file(
    state_dir: Path,
    service: str,
    scopes: list[str] | None = None,
    *,
    purpose: str = "service",
    role: str = "service",
    platforms: list[str] | None = None,
) -> Path:
    """A dev token for ``service`` (role ``service``, the role's default scopes unless
    ``scopes`` names others; ``purpose`` names the file when a service holds more than one),
    minted afresh on every call so it always matches the current dev key and never runs out
    during a local run."""
    private_path, _ = ensure(state_dir)
    path = key_dir(state_dir) / f"{service}-{purpose}.jwt"
    token = mint_token(
        private_path,
        role=role,
        subject=service,
        scopes=scopes,
        platforms=platforms,
        ttl_s=SERVICE_TOKEN_TTL_S,
    )
    _write_private(path, token.encode())
    return path


def service_environment(state_dir: Path) -> dict[str, str]:
    private_path, jwks_path = ensure(state_dir)
    return {
        "AUTH_JWKS_FILE": str(jwks_path),
        "APPEALS_DEV_SIGNING_KEY_FILE": str(private_path),
        "INTAKE_PSEUDONYM_KEY_FILE": str(ensure_secret(state_dir, "pseudonym-key.hex")),
        **{
            variable: str(service_token_file(state_dir, service))
            for service, variable in INTAKE_CLIENTS.items()
        },
        "HELP_SECRET_KEY_FILE": str(ensure_secret(state_dir, "help-secret.hex")),
        "HELP_NOTIFICATIONS_TOKEN_FILE": str(
            service_token_file(state_dir, "help", scopes=HELP_CODES_SCOPES)
        ),
        "HELP_INTAKE_TOKEN_FILE": str(
            service_token_file(
                state_dir,
                "help",
                scopes=HELP_SURFACE_SCOPES,
                purpose="surface",
                role="surface",
                platforms=list(PLATFORM_NAMES),
            )
        ),
        "ROUTING_HELP_TOKEN_FILE": str(
            service_token_file(
                state_dir, "routing", scopes=ROUTING_CHAT_RELAY_SCOPES, purpose="chat-relay"
            )
        ),
    }


def _write_private(path: Path, content: bytes) -> None:
    """Write a secret readable by its owner only (0600 from the start, never world-readable)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def dev_verifier(jwks_file: Path) -> TokenVerifier:
    """A verifier of tokens minted with the dev key (its issuer, audience and algorithm).
    FOR LOCAL RUNS AND TESTS ONLY."""
    from appeals_runtime.auth import AUDIENCE, DEV_ISSUER, TokenVerifier

    return TokenVerifier(
        json.loads(jwks_file.read_text()),
        issuer=DEV_ISSUER,
        audience=AUDIENCE,
        algorithms=["EdDSA"],
    )


def mint_token(
    private_key_file: Path,
    *,
    role: str,
    subject: str,
    platforms: list[str] | None = None,
    queues: list[str] | None = None,
    scopes: list[str] | None = None,
    ttl_s: int = 12 * 3600,
    reviewer: str | None = None,
) -> str:
    """A dev token signed with the local key. FOR LOCAL RUNS AND TESTS ONLY."""
    from appeals_runtime.auth import AUDIENCE, DEFAULT_SCOPES, DEV_ISSUER, Role

    now = int(time.time())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "scope": " ".join(scopes if scopes is not None else DEFAULT_SCOPES[Role(role)]),
        "iat": now,
        "exp": now + ttl_s,
    }
    if platforms:
        claims["platforms"] = platforms
    if reviewer:
        claims["reviewer"] = reviewer  # agent tokens: "person" or "assistant"
    if queues:
        claims["queues"] = queues
    key = serialization.load_pem_private_key(private_key_file.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": DEV_KEY_ID})  # type: ignore[arg-type]
