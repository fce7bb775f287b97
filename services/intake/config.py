"""Intake's configuration, read from the environment at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, FilePath

from appeals_runtime import admission
from appeals_runtime.auth import AuthSettings
from appeals_runtime.rate_limits import Limit
from services.intake.eligibility import DEFAULT_RULES_FILE

# Consumer groups of intake: one builds the status view, one takes surfaces' request events.
STATUS_CONSUMER_GROUP = "intake-status"
REQUESTS_CONSUMER_GROUP = "intake-requests"


class IntakeSettings(AuthSettings):
    http_port: int = Field(default=8080, validation_alias="INTAKE_HTTP_PORT")
    grpc_port: int = Field(default=50051, validation_alias="INTAKE_GRPC_PORT")
    # Secret for the keyed hashes of appellants (platform and user id) under which intake keeps
    # each person's random pseudonym. No default: `make run` makes a dev one.
    pseudonym_key_file: FilePath = Field(validation_alias="INTAKE_PSEUDONYM_KEY_FILE")
    eligibility_file: FilePath = Field(
        default=DEFAULT_RULES_FILE, validation_alias="INTAKE_ELIGIBILITY_FILE"
    )
    # How long an idempotency key is remembered (the draft suggests at least 24 hours).
    idempotency_key_ttl_s: int = Field(
        default=24 * 3600, ge=60, validation_alias="INTAKE_IDEMPOTENCY_KEY_TTL_S"
    )
    # A reservation younger than this is "in flight" (409); older ones were abandoned by a
    # crashed attempt and are taken over. Must exceed KAFKA_PUBLISH_TIMEOUT_S.
    in_flight_s: float = Field(default=30.0, gt=0, validation_alias="INTAKE_IN_FLIGHT_S")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, validation_alias="INTAKE_MAX_BODY_BYTES"
    )
    # REST requests (and gRPC submits) in hand at once; the next is refused at once, 503 +
    # Retry-After (UNAVAILABLE over gRPC): appeals_runtime.admission.
    max_requests: int = Field(
        default=admission.DEFAULT_LIMIT, ge=1, validation_alias="INTAKE_MAX_REQUESTS"
    )
    # Token buckets: burst, then per hour.
    appellant_burst: int = Field(default=5, ge=1, validation_alias="INTAKE_APPELLANT_BURST")
    appellant_per_hour: float = Field(
        default=20, ge=0, validation_alias="INTAKE_APPELLANT_PER_HOUR"
    )
    device_burst: int = Field(default=20, ge=1, validation_alias="INTAKE_DEVICE_BURST")
    device_per_hour: float = Field(default=200, ge=0, validation_alias="INTAKE_DEVICE_PER_HOUR")
    network_burst: int = Field(default=200, ge=1, validation_alias="INTAKE_NETWORK_BURST")
    network_per_hour: float = Field(default=5000, ge=0, validation_alias="INTAKE_NETWORK_PER_HOUR")
    surface_burst: int = Field(default=2000, ge=1, validation_alias="INTAKE_SURFACE_BURST")
    surface_per_hour: float = Field(
        default=3_600_000, ge=0, validation_alias="INTAKE_SURFACE_PER_HOUR"
    )

    def rate_limits(self) -> dict[str, Limit]:
        return {
            "appellant": Limit(self.appellant_burst, self.appellant_per_hour),
            "device": Limit(self.device_burst, self.device_per_hour),
            "network": Limit(self.network_burst, self.network_per_hour),
            "surface": Limit(self.surface_burst, self.surface_per_hour),
        }

    def pseudonym_key(self) -> bytes:
        return Path(self.pseudonym_key_file).read_bytes().strip()
