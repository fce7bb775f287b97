"""The live-help service's configuration, read from the environment at start-up.

Secrets live in files named here, never in the store or the repository: the key that protects
verification codes and signs help sessions (``HELP_SECRET_KEY_FILE``, 32 random bytes, hex) and
the service token with which the codes are handed to notifications
(``HELP_NOTIFICATIONS_TOKEN_FILE``, role ``service``, scope ``codes:send``). ``make run`` creates
DEVELOPMENT-ONLY ones under ``.local/dev-keys/``.

Where accounts are looked up: each platform's account API (``HELP_<PLATFORM>_ACCOUNTS_URL`` and
``_TOKEN``), or, for local runs, a file of DEVELOPMENT-ONLY sample accounts
(``HELP_ACCOUNTS_FILE``; ``make run`` names ``services/help/dev_accounts.yaml``). A platform with
neither has no accounts anyone can verify.

Live chat: account-access chats submit an appeal to intake (``HELP_INTAKE_URL``) with a surface
token of every platform (``HELP_INTAKE_TOKEN_FILE``, scopes ``appeals:submit appeals:read``);
routing's relay calls the internal chat API with a service token checked against
``AUTH_JWKS_FILE`` (scope ``chats:relay``).

Transcripts are kept ``HELP_TRANSCRIPT_RETENTION_DAYS`` after their chat closed, then deleted;
the lifecycle topic's ``particulars_erased`` (read as consumer group ``HELP_CONSUMER_GROUP``)
and ``POST /v1/help/erasures`` forget a person, and its ``decided`` is said in the chats of the
appeal (see ``services/help/README.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, FilePath, SecretStr, field_validator

from appeals import platforms
from appeals_runtime.auth import AuthSettings
from appeals_runtime.rate_limits import Limit
from appeals_runtime.settings import http_url

# Live help's consumer group on the lifecycle topic (it acts on ``particulars_erased`` and
# ``decided`` only).
CONSUMER_GROUP = "help"


def accounts_api_variables(platform: str) -> tuple[str, str]:
    """The environment variables of a platform's account API: endpoint URL and token."""
    prefix = f"HELP_{platform.upper()}_ACCOUNTS"
    return f"{prefix}_URL", f"{prefix}_TOKEN"


class HelpSettings(AuthSettings):
    http_port: int = Field(default=8085, validation_alias="HELP_HTTP_PORT")
    secret_key_file: FilePath = Field(validation_alias="HELP_SECRET_KEY_FILE")
    notifications_url: str = Field(
        default="http://127.0.0.1:8082", validation_alias="HELP_NOTIFICATIONS_URL"
    )
    notifications_token_file: FilePath = Field(validation_alias="HELP_NOTIFICATIONS_TOKEN_FILE")
    accounts_file: FilePath | None = Field(default=None, validation_alias="HELP_ACCOUNTS_FILE")
    accounts_timeout_s: float = Field(default=5.0, gt=0, validation_alias="HELP_ACCOUNTS_TIMEOUT_S")
    # A code works once, for this long, with at most this many tries.
    code_ttl_s: float = Field(default=600.0, ge=60, le=3600, validation_alias="HELP_CODE_TTL_S")
    code_attempts: int = Field(default=5, ge=1, le=10, validation_alias="HELP_CODE_ATTEMPTS")
    # How long a help session lasts once the person proved control of the account.
    session_ttl_s: float = Field(
        default=1800.0, ge=60, le=4 * 3600, validation_alias="HELP_SESSION_TTL_S"
    )
    # Code requests per hour (and at once) per client address, per named account and per
    # contact on file; and code checks per hour per client address.
    requests_per_address_per_hour: float = Field(
        default=20, ge=0, validation_alias="HELP_REQUESTS_PER_ADDRESS_PER_HOUR"
    )
    requests_per_account_per_hour: float = Field(
        default=5, ge=0, validation_alias="HELP_REQUESTS_PER_ACCOUNT_PER_HOUR"
    )
    codes_per_contact_per_hour: float = Field(
        default=5, ge=0, validation_alias="HELP_CODES_PER_CONTACT_PER_HOUR"
    )
    checks_per_address_per_hour: float = Field(
        default=60, ge=0, validation_alias="HELP_CHECKS_PER_ADDRESS_PER_HOUR"
    )
    # Live chat: intake, where an account-access chat's appeal is submitted (as a surface of
    # every platform, with the token in HELP_INTAKE_TOKEN_FILE); unset token: only feature help.
    intake_url: str = Field(default="http://127.0.0.1:8080", validation_alias="HELP_INTAKE_URL")
    intake_token_file: FilePath | None = Field(
        default=None, validation_alias="HELP_INTAKE_TOKEN_FILE"
    )
    intake_timeout_s: float = Field(default=5.0, gt=0, validation_alias="HELP_INTAKE_TIMEOUT_S")
    # An agent's first answer is due this long after the chat was requested.
    first_answer_sla_s: float = Field(
        default=120.0, ge=10, le=24 * 3600, validation_alias="HELP_FIRST_ANSWER_SLA_S"
    )
    message_max_chars: int = Field(
        default=2000, ge=1, le=20_000, validation_alias="HELP_MESSAGE_MAX_CHARS"
    )
    # Chats opened per hour per help session, per account (across its sessions: a person may
    # verify again) and per client address; messages per minute per chat and side (the
    # person's, the agent's) and per person across their chats, and the person's messages per
    # minute per client address (people behind one address share it: set it above the
    # per-person limit).
    chats_per_session_per_hour: float = Field(
        default=10, ge=0, validation_alias="HELP_CHATS_PER_SESSION_PER_HOUR"
    )
    chats_per_account_per_hour: float = Field(
        default=10, ge=0, validation_alias="HELP_CHATS_PER_ACCOUNT_PER_HOUR"
    )
    chats_per_address_per_hour: float = Field(
        default=30, ge=0, validation_alias="HELP_CHATS_PER_ADDRESS_PER_HOUR"
    )
    messages_per_minute: float = Field(
        default=30, ge=0, validation_alias="HELP_MESSAGES_PER_MINUTE"
    )
    messages_per_address_per_minute: float = Field(
        default=120, ge=0, validation_alias="HELP_MESSAGES_PER_ADDRESS_PER_MINUTE"
    )
    # A closed chat's transcript (messages, receipts, the chat itself) is deleted this many
    # days after the day it closed (within a day more): at least a day, at most ten years.
    transcript_retention_days: int = Field(
        default=90, ge=1, le=3650, validation_alias="HELP_TRANSCRIPT_RETENTION_DAYS"
    )
    consumer_group: str = Field(
        default=CONSUMER_GROUP, min_length=1, validation_alias="HELP_CONSUMER_GROUP"
    )

    @field_validator("notifications_url", "intake_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    def secret_key(self) -> bytes:
        text = self.secret_key_file.read_text(encoding="utf-8").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError as error:
            raise ValueError(f"{self.secret_key_file}: not hex") from error
        if len(key) < 32:
            raise ValueError(f"{self.secret_key_file}: needs at least 32 bytes (64 hex digits)")
        return key

    def notifications_token(self) -> str:
        return self.notifications_token_file.read_text(encoding="utf-8").strip()

    def intake_token(self) -> str | None:
        if self.intake_token_file is None:
            return None
        return self.intake_token_file.read_text(encoding="utf-8").strip()

    def accounts_apis(self) -> dict[str, tuple[str, SecretStr]]:
        """Each platform's account API that is configured: {platform: (url, token)}."""
        apis: dict[str, tuple[str, SecretStr]] = {}
        for name in platforms.NAMES:
            url_variable, token_variable = accounts_api_variables(name)
            url, token = os.environ.get(url_variable), os.environ.get(token_variable)
            if url and token:
                apis[name] = (url.rstrip("/"), SecretStr(token))
        return apis

    def limits(self) -> dict[str, Limit]:
        def hourly(per_hour: float) -> Limit:
            return Limit(burst=max(1, int(per_hour // 4) or 1), per_hour=per_hour)

        def per_minute(count: float) -> Limit:
            # A minute's allowance at once, refilled evenly.
            return Limit(burst=max(1, int(count)), per_hour=count * 60)

        return {
            "address": hourly(self.requests_per_address_per_hour),
            "account": hourly(self.requests_per_account_per_hour),
            "contact": hourly(self.codes_per_contact_per_hour),
            "check": hourly(self.checks_per_address_per_hour),
            "chat_session": hourly(self.chats_per_session_per_hour),
            "chat_account": hourly(self.chats_per_account_per_hour),
            "chat_address": hourly(self.chats_per_address_per_hour),
            "chat_messages": per_minute(self.messages_per_minute),
            "chat_person_messages": per_minute(self.messages_per_minute),
            "chat_address_messages": per_minute(self.messages_per_address_per_minute),
        }


DEV_ACCOUNTS_FILE = Path(__file__).with_name("dev_accounts.yaml")
