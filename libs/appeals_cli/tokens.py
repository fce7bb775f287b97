"""Dev tokens for local runs, signed with the key `make run` generated (never for production)."""

from __future__ import annotations

import os
from pathlib import Path

from appeals_devstack import devkeys
from appeals_devstack.paths import STATE_DIR


def signing_key_file() -> Path:
    configured = os.environ.get("APPEALS_DEV_SIGNING_KEY_FILE")
    path = Path(configured) if configured else devkeys.key_dir(STATE_DIR) / "dev-signing-key.pem"
    if not path.exists():
        raise SystemExit(
            f"no dev signing key at {path}: start the pipeline once with `make run` (or `make up`),"
            " or set APPEALS_DEV_SIGNING_KEY_FILE"
        )
    return path


def surface_token(platform: str, subject: str | None = None) -> str:
    return devkeys.mint_token(
        signing_key_file(), role="surface", subject=subject or f"{platform}-surface",
        platforms=[platform],
    )  # fmt: skip


def agent_token(name: str, queues: list[str] | None = None, *, assistant: bool = False) -> str:
    """A reviewer's token: a person's, or an automated assistant's (``--auto``, the demo), whose
    decisions never count as human review."""
    return devkeys.mint_token(
        signing_key_file(), role="agent", subject=name, queues=queues or ["*"],
        reviewer="assistant" if assistant else "person",
    )  # fmt: skip


def ops_token(subject: str = "ops") -> str:
    return devkeys.mint_token(signing_key_file(), role="ops", subject=subject)


def referral_body_token(body: str) -> str:
    """An external body's token (``oversight_board``, ``ods:<id>``): reads and decides the
    referrals made to it through routing's Referrals API."""
    return devkeys.mint_token(signing_key_file(), role="referral_body", subject=body)


def auditor_token(subject: str = "auditor") -> str:
    """A regulator's or external auditor's token: reads the audit log, proofs, exports and
    reports; nothing personal."""
    return devkeys.mint_token(signing_key_file(), role="auditor", subject=subject)


def service_token(name: str) -> str:
    """An internal service's token (e.g. ``routing``): reads appellants' particulars from intake."""
    return devkeys.mint_token(signing_key_file(), role="service", subject=name)
