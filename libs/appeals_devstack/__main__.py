"""`python -m appeals_devstack run|up|down|status` — what `make run`, `make up`, `make down` call.

* ``run``: start Kafka and FerretDB (unless ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL`` name
  existing servers) and the ops stack, Jaeger (unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` names an
  existing collector) and Prometheus, both skipped with ``APPEALS_OPS=0`` (``make run OPS=0``);
  create the topics, run the four services, live help and the ops page in the foreground with
  prefixed logs; Ctrl-C stops everything.
* ``up``: the same, detached; returns once every service answers ``/readyz``.
* ``down``: stops what ``up`` (or a ``run`` that was killed) left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from appeals_devstack import processes
from appeals_devstack.jaeger import JaegerPorts
from appeals_devstack.paths import STATE_DIR
from appeals_devstack.stack import (
    INFRASTRUCTURE_NAMES,
    SERVICES,
    Infrastructure,
    OpsOptions,
    ServiceProcess,
    links_environment,
    service_environment,
    start_service,
    wait_all_ready,
)

RUN_DIR = STATE_DIR / "run"
LOG_DIR = STATE_DIR / "logs"
STOP_ORDER = [spec.name for spec in reversed(SERVICES)] + list(reversed(INFRASTRUCTURE_NAMES))


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _running() -> dict[str, int]:
    alive = {}
    for pid_file in RUN_DIR.glob("*.pid"):
        pid = int(pid_file.read_text().strip() or 0)
        if pid and processes.pid_alive(pid):
            alive[pid_file.stem] = pid
        else:
            pid_file.unlink()
    return alive


def _record(name: str, pid: int) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / f"{name}.pid").write_text(str(pid))


def _ops_options() -> OpsOptions | None:
    if os.environ.get("APPEALS_OPS", "1") == "0":
        return None
    return OpsOptions.for_services(
        os.environ,
        jaeger_ports=JaegerPorts.from_env(os.environ),
        prometheus_port=int(os.environ.get("APPEALS_LOCAL_PROMETHEUS_PORT", "9090")),
    )


def _start_infrastructure() -> Infrastructure:
    existing_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    existing_mongodb = os.environ.get("MONGODB_URL")
    ops = _ops_options()
    existing_otlp = ops.existing_otlp_endpoint if ops else None
    for what, value in (("Kafka", existing_kafka), ("MongoDB", existing_mongodb)):
        if value:
            _say(f"using existing {what} at {value} (nothing started locally for it)")
    if existing_otlp:
        _say(f"using existing OTLP collector at {existing_otlp} (no local Jaeger)")
    started_here = [
        name
        for name, absent in (
            ("Kafka", existing_kafka),
            ("FerretDB", existing_mongodb),
            ("Jaeger", not ops or existing_otlp),
            ("Prometheus", not ops),
        )
        if not absent
    ]
    _say(f"starting {', '.join(started_here) or 'nothing locally'}")
    started = time.monotonic()
    infra = Infrastructure.start(
        STATE_DIR,
        kafka_port=int(os.environ.get("APPEALS_LOCAL_KAFKA_PORT", "9092")),
        kafka_controller_port=int(os.environ.get("APPEALS_LOCAL_KAFKA_CONTROLLER_PORT", "9093")),
        mongodb_port=int(os.environ.get("APPEALS_LOCAL_MONGODB_PORT", "27017")),
        existing_kafka=existing_kafka,
        existing_mongodb=existing_mongodb,
        topic_partitions=int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "3")),
        ops=ops,
    )
    for name, pid in infra.pids().items():
        _record(name, pid)
    _say(
        f"Kafka {infra.kafka_bootstrap_servers}, store {infra.mongodb_url}, topics ready "
        f"({time.monotonic() - started:.1f}s)"
    )
    return infra


def _say_ops(infra: Infrastructure) -> None:
    if infra.jaeger is not None:
        _say(
            f"traces: Jaeger {infra.jaeger.query_url} (query API /api/traces; "
            f"services export to OTLP {infra.jaeger.otlp_endpoint})"
        )
    elif infra.otlp_endpoint:
        _say(f"traces: exported to {infra.otlp_endpoint}")
    if infra.prometheus is not None:
        _say(
            f"metrics: Prometheus {infra.prometheus.url} "
            f"(scraping {', '.join(infra.prometheus.targets)}; rules from deploy/prometheus/rules)"
        )
    if infra.jaeger is None and infra.prometheus is None:
        _say("ops stack off (OPS=0): no Jaeger, no Prometheus")


def _stop(services: list[ServiceProcess], infra: Infrastructure | None) -> None:
    for service in reversed(services):
        service.stop()
        (RUN_DIR / f"{service.spec.name}.pid").unlink(missing_ok=True)
    if infra is not None:
        infra.stop()
        for name in INFRASTRUCTURE_NAMES:
            (RUN_DIR / f"{name}.pid").unlink(missing_ok=True)


def _refuse_if_running() -> None:
    running = _running()
    if running:
        sys.exit(f"already running: {', '.join(sorted(running))}. Stop it first with `make down`.")


def _service_env(infra: Infrastructure) -> dict[str, str]:
    from appeals_devstack import devkeys

    env = service_environment(infra)
    env.update(devkeys.service_environment(STATE_DIR))
    for name, value in links_environment(env).items():
        env.setdefault(name, value)
    return env


def _say_ops_page(env: dict[str, str], services: list[ServiceProcess]) -> None:
    """The ops page's address with a dev ops token in its fragment (never sent to the server)."""
    from appeals_devstack import devkeys

    page = next(s for s in services if s.spec.name == "ops")
    token = devkeys.mint_token(
        Path(env["APPEALS_DEV_SIGNING_KEY_FILE"]), role="ops", subject="ops-page-dev"
    )
    _say(f"ops page, signed in with a DEV-ONLY ops token (12 h; local runs only):\n"
         f"    {page.base_url}/ops#token={token}")  # fmt: skip
    helper = next((s for s in services if s.spec.name == "help"), None)
    if helper is not None:
        _say(
            f"live help for locked-out people: {helper.base_url}/help (DEV-ONLY sample "
            "accounts in services/help/dev_accounts.yaml; codes land in notifications' records)"
        )


def run() -> int:
    _refuse_if_running()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    infra: Infrastructure | None = None
    services: list[ServiceProcess] = []
    try:
        infra = _start_infrastructure()
        env = _service_env(infra)
        env.setdefault("LOG_FORMAT", "text")
        for spec in SERVICES:
            service = start_service(spec, env, log_path=None)
            services.append(service)
            _record(spec.name, service.process.pid)
        wait_all_ready(services)
        _say("all services ready: " + ", ".join(f"{s.spec.name} {s.base_url}" for s in services))
        _say_ops(infra)
        _say_ops_page(env, services)
        _say("try: .venv/bin/appeals demo    (Ctrl-C stops everything)")
        while not stop.is_set():
            exited = [s for s in services if s.process.poll() is not None]
            if exited:
                _say(f"{exited[0].spec.name} exited with {exited[0].process.returncode}; stopping")
                return 1
            stop.wait(0.5)
        return 0
    finally:
        _say("stopping the services and the infrastructure")
        _stop(services, infra)
        _say("stopped")


def up() -> int:
    _refuse_if_running()
    infra = _start_infrastructure()
    env = _service_env(infra)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    services = []
    try:
        for spec in SERVICES:
            service = start_service(spec, env, log_path=LOG_DIR / f"{spec.name}.log")
            services.append(service)
            _record(spec.name, service.process.pid)
        wait_all_ready(services)
    except BaseException:
        _stop(services, infra)
        raise
    _say("up: " + ", ".join(f"{s.spec.name} {s.base_url}" for s in services))
    _say_ops(infra)
    _say_ops_page(env, services)
    _say(f"logs in {LOG_DIR}; stop with `make down`")
    return 0


def down() -> int:
    running = _running()
    if not running:
        _say("nothing running")
        return 0
    for name in STOP_ORDER:
        if name in running:
            _say(f"stopping {name}")
            processes.stop_group(running[name], timeout=30)
            (RUN_DIR / f"{name}.pid").unlink(missing_ok=True)
    return 0


def status() -> int:
    running = _running()
    for name in STOP_ORDER:
        print(
            f"{name:<14} {'running, pid ' + str(running[name]) if name in running else 'stopped'}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appeals_devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    args = parser.parse_args(argv)
    commands = {"run": run, "up": up, "down": down, "status": status}
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
