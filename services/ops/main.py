"""Wires the ops page together and runs it: nothing else lives here."""

from __future__ import annotations

from appeals_runtime.auth import TokenVerifier
from appeals_runtime.http import HttpServer
from appeals_runtime.service import observed, run_components, run_service
from appeals_runtime.settings import load_settings
from services.ops import api
from services.ops.audit_log import AuditTrails
from services.ops.config import OpsSettings
from services.ops.scraper import OpsBoard, OpsScraper

SERVICE_NAME = "ops"


def build(settings: OpsSettings) -> tuple[OpsBoard, AuditTrails]:
    board = OpsBoard(
        settings.metrics_targets,
        interval_s=settings.ops_scrape_interval_s,
        window_s=settings.ops_history_s,
        trace_ui_url=settings.ops_trace_ui_url,
    )
    return board, AuditTrails(settings.ops_audit_url)


async def serve(settings: OpsSettings) -> None:
    tokens = TokenVerifier.from_settings(settings)
    with observed(SERVICE_NAME, settings):
        board, trails = build(settings)
        app = api.create_app(board, trails, tokens)
        http = HttpServer(app, host=settings.bind_host, port=settings.http_port)
        try:
            # The scraper is stopped first (components stop last first): its board ends the
            # page's open streams, which the HTTP server would otherwise wait for.
            await run_components([http, OpsScraper(board)])
        finally:
            await trails.close()


def main() -> None:
    run_service(serve(load_settings(OpsSettings)))


if __name__ == "__main__":
    main()
