"""Wires the audit service together and runs it: nothing else lives here."""

from __future__ import annotations

from appeals_runtime import store
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.service import run_components, run_service, service_context
from appeals_runtime.settings import load_settings
from services.audit import api, key_files
from services.audit.config import CONSUMER_GROUP, AuditLogSettings, AuditSettings
from services.audit.consumer import AUDITED_TOPICS, audit_consumer
from services.audit.exports.acknowledgements import ReconciliationSources
from services.audit.log import repository, tree_repository
from services.audit.log.appender import Appender
from services.audit.log.checkpointer import Checkpointer
from services.audit.log.integrity import Integrity
from services.audit.privacy import person_keys
from services.audit.privacy.sealing import Secrets
from services.audit.service import AuditService

SERVICE_NAME = "audit"
INDEXES = [*repository.INDEXES, *tree_repository.INDEXES, *person_keys.INDEXES]


def build(db: store.Database, settings: AuditLogSettings) -> tuple[AuditService, Secrets]:
    """The audit log over ``db`` with its keys (the service's, and the tests' and the bench's)."""
    secrets = key_files.load_secrets(settings)
    log = repository.LogRepository(db)
    tree = tree_repository.TreeRepository(db, log)
    integrity = Integrity(log, tree, key_files.load_signer(settings), settings.checkpoint_dir)
    keys = person_keys.KeyRepository(db, secrets)
    return AuditService(log, Appender(log), tree, keys, integrity), secrets


async def serve(settings: AuditSettings) -> None:
    tokens = TokenVerifier.from_settings(settings)
    async with service_context(SERVICE_NAME, settings, indexes=INDEXES) as ctx:
        audit, secrets = build(ctx.db, settings)
        await audit.upgrade_store()
        consumer = audit_consumer(
            name=SERVICE_NAME,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=CONSUMER_GROUP,
            service=audit,
            secrets=secrets,
            producer=ctx.producer,
        )
        checkpointer = Checkpointer(
            audit.integrity, audit.appender.grown, interval_s=settings.audit_checkpoint_interval_s
        )
        app = api.create_app(
            audit,
            tokens,
            readiness_checks=ctx.readiness_checks,
            reconciliation=ReconciliationSources(
                settings.kafka_bootstrap_servers, settings.audit_intake_url or None
            ),
        )
        http = HttpServer(app, host=settings.bind_host, port=settings.http_port)
        probe = ctx.dead_letter_probe(AUDITED_TOPICS)
        await run_components([http, consumer, checkpointer, probe])


def main() -> None:
    run_service(serve(load_settings(AuditSettings)))


if __name__ == "__main__":
    main()
