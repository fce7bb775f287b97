"""Routing's configuration, read from the environment at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, FilePath

from appeals_runtime.auth import AuthSettings
from appeals_runtime.intake_client import IntakeClientSettings
from services.routing.policy_file import DEFAULT_POLICY_FILE

CONSUMER_GROUP = "routing"
# Live-help chats: a group of its own, run only when live help is configured.
CHAT_CONSUMER_GROUP = "routing-chats"


class RoutingSettings(AuthSettings, IntakeClientSettings):
    # Routing's own service token: it reads the statement of a claimed case from intake.
    intake_token_file: FilePath = Field(validation_alias="ROUTING_INTAKE_TOKEN_FILE")
    http_port: int = Field(default=8081, validation_alias="ROUTING_HTTP_PORT")
    grpc_port: int = Field(default=50052, validation_alias="ROUTING_GRPC_PORT")
    # The routing policy (YAML); re-read when it changes, checked this often.
    policy_file: Path = Field(default=DEFAULT_POLICY_FILE, validation_alias="ROUTING_POLICY_FILE")
    policy_reload_s: float = Field(default=2.0, gt=0, validation_alias="ROUTING_POLICY_RELOAD_S")
    # How long a claim holds without a decision or heartbeat before the case returns to its queue.
    claim_lease_s: int = Field(default=900, ge=10, validation_alias="ROUTING_CLAIM_LEASE_S")
    # How often an agent's case stream looks for new cases.
    offer_poll_s: float = Field(default=0.5, gt=0, validation_alias="ROUTING_OFFER_POLL_S")
    # How often the timers look for expired leases, SLA warnings and breaches.
    sweep_s: float = Field(default=5.0, gt=0, validation_alias="ROUTING_SWEEP_S")
    # How often the referrals out with external bodies are counted for ops (open, overdue).
    referral_check_s: float = Field(default=60.0, gt=0, validation_alias="ROUTING_REFERRAL_CHECK_S")
    # Live help (services/help owns the chats; routing queues them and relays agents' side).
    # Without the token file the chat RPCs answer UNAVAILABLE and help.chats.v1 is not read.
    help_url: str = Field(
        default="http://127.0.0.1:8085", min_length=1, validation_alias="ROUTING_HELP_URL"
    )
    help_token_file: FilePath | None = Field(
        default=None, validation_alias="ROUTING_HELP_TOKEN_FILE"
    )
    # Chats an agent holds at once, and how long an offered chat stays reserved for its agent.
    chat_capacity: int = Field(default=3, ge=1, le=50, validation_alias="ROUTING_CHAT_CAPACITY")
    chat_offer_s: float = Field(default=20.0, gt=0, validation_alias="ROUTING_CHAT_OFFER_S")
