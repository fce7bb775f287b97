"""Settings come from the environment and fail fast with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from appeals_devstack import devkeys
from appeals_runtime.intake_client import IntakeClientSettings
from appeals_runtime.settings import SettingsError, load_settings
from services.intake.config import IntakeSettings
from services.notifications.config import NotificationsSettings
from services.routing.config import RoutingSettings


@pytest.fixture(autouse=True)
def jwks_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": []}')
    monkeypatch.setenv("AUTH_JWKS_FILE", str(path))
    secret = tmp_path / "pseudonym.hex"
    secret.write_text("00" * 32)
    monkeypatch.setenv("INTAKE_PSEUDONYM_KEY_FILE", str(secret))
    for variable in devkeys.INTAKE_CLIENTS.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(
        "ROUTING_INTAKE_TOKEN_FILE", str(devkeys.service_token_file(tmp_path, "routing"))
    )
    return path


def test_defaults_are_the_documented_local_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTAKE_HTTP_PORT", "INTAKE_GRPC_PORT", "KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(IntakeSettings)
    assert (settings.http_port, settings.grpc_port) == (8080, 50051)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.mongodb_url == "mongodb://127.0.0.1:27017/"
    assert load_settings(RoutingSettings).http_port == 8081


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_HTTP_PORT", "18080")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    settings = load_settings(IntakeSettings)
    assert settings.http_port == 18080
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_a_malformed_variable_stops_start_up_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INTAKE_HTTP_PORT", "eighty")
    monkeypatch.setenv("KAFKA_PUBLISH_TIMEOUT_S", "-1")
    with pytest.raises(SettingsError):
        load_settings(IntakeSettings)
    message = capsys.readouterr().err
    assert "INTAKE_HTTP_PORT" in message
    assert "KAFKA_PUBLISH_TIMEOUT_S" in message


def test_a_service_without_a_verification_key_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_JWKS_FILE")
    with pytest.raises(SettingsError):
        load_settings(IntakeSettings)
    assert "AUTH_JWKS_FILE" in capsys.readouterr().err


@pytest.mark.parametrize("settings_type", [RoutingSettings, NotificationsSettings])
def test_a_service_that_reads_particulars_refuses_to_start_without_a_service_token(
    settings_type: type[IntakeClientSettings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    variable = devkeys.INTAKE_CLIENTS[settings_type.__name__.removesuffix("Settings").lower()]
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SettingsError):
        load_settings(settings_type)
    assert variable in capsys.readouterr().err
    private, _ = devkeys.ensure(tmp_path)
    agent = tmp_path / "agent.jwt"
    agent.write_text(devkeys.mint_token(private, role="agent", subject="alice"))
    monkeypatch.setenv(variable, str(agent))
    with pytest.raises(SettingsError):
        load_settings(settings_type)
    message = capsys.readouterr().err
    assert variable in message and "'agent' token" in message
