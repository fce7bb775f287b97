"""`appeals audit ...`: the operator's and the third party's tools for the audit log.

  appeals audit verify                     recompute the whole tree from the store; exit 1 if bad
  appeals audit checkpoint                 sign a checkpoint now (also written to a file)
  appeals audit key                        the verifier key third parties check checkpoints with
  appeals audit trail APPEAL_ID            an appeal's entries, with inclusion proofs
  appeals audit proof --event-id ID        an inclusion proof bundle (JSON) for one event
  appeals audit consistency FIRST [SECOND] a consistency proof bundle between two checkpoints
  appeals audit check-proof FILE --key K   check a bundle with only the verifier key (no store)
  appeals audit export --since --until     statements of reasons (DSA database fields), JSON
  appeals audit report --month YYYY-MM     Art. 15 complaint-handling figures, CSV or JSON
  appeals audit reconcile --since --until  intake's acknowledgements vs the log, by appeal id
  appeals audit forget --pseudonym P       crypto-shred one person's personal data

Every command but ``check-proof`` reads the store named by ``MONGODB_URL`` / ``MONGODB_DATABASE``
with the audit's keys (``AUDIT_*`` variables, as the service), and records its read in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appeals import vocabulary
from appeals_devstack.paths import STATE_DIR
from appeals_proofs import bundles
from appeals_proofs.proofs import InvalidProof
from appeals_proofs.signed_note import InvalidNote, Verifier
from appeals_runtime import store
from appeals_runtime.errors import NotFound, TransientError
from services.audit.config import AuditLogSettings
from services.audit.exports import complaints_report, sources, transparency
from services.audit.exports.acknowledgements import (
    Either,
    IntakeAcknowledgements,
    IntakeLookup,
    TopicAcknowledgements,
)
from services.audit.exports.reconciliation import AcknowledgementSource, Window
from services.audit.log.integrity import IntegrityError
from services.audit.main import INDEXES, build
from services.audit.privacy import sealing
from services.audit.service import AuditService, Reader

Command = Callable[[AuditService, argparse.Namespace, AuditLogSettings], Awaitable[int]]


def settings() -> AuditLogSettings:
    """The service's settings from the environment; by default the state `make run` uses."""
    if "AUDIT_STATE_DIR" in os.environ or "APPEALS_STATE_DIR" in os.environ:
        return AuditLogSettings()
    return AuditLogSettings(audit_state_dir=STATE_DIR / "audit")


def operator() -> Reader:
    return Reader(f"cli:{getpass.getuser()}", "operator")


def _print(data: Any, output: str | None = None) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
        print(f"written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _with_store(command: Command, args: argparse.Namespace) -> int:
    config = settings()
    client = store.create_client(config.mongodb_url, app_name="appeals-cli")
    try:
        db = client[config.mongodb_database]
        await store.ensure_indexes(db, INDEXES)
        service, _ = build(db, config)
        return await command(service, args, config)
    finally:
        await client.close()


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_store(command, args))
        except IntegrityError as error:
            print(f"audit log integrity: {error}", file=sys.stderr)
            return 1
        except NotFound as error:
            print(f"not found: {error}", file=sys.stderr)
            return 1
        except TransientError as error:
            raise SystemExit(f"cannot reach the store or broker: {error}") from error

    return handler


# Commands ----------------------------------------------------------------------------------


async def _verify(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    await service.log_access(operator(), "verify", "log")
    result = await service.integrity.verify()
    _print(dataclasses.asdict(result))
    return 0 if result.ok else 1


async def _checkpoint(service: AuditService, _: argparse.Namespace, cfg: AuditLogSettings) -> int:
    await service.log_access(operator(), "sign checkpoint", "log")
    signed = await service.integrity.checkpoint()
    sys.stdout.write(signed.note)
    print(f"tree size {signed.size}, also in {cfg.checkpoint_dir}", file=sys.stderr)
    return 0


async def _key(service: AuditService, _: argparse.Namespace, __: AuditLogSettings) -> int:
    print(service.integrity.verifier_key)
    return 0


async def _trail(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    await service.log_access(operator(), "trail", args.appeal_id)
    trail = await service.trail(args.appeal_id)
    _print(
        {
            "appeal_id": trail.appeal_id,
            "tree_size": trail.checkpoint.size if trail.checkpoint else 0,
            "entries": [
                {
                    "index": entry.document["index"],
                    "type": entry.document["type"],
                    "occurred_at": entry.document["occurred_at"].isoformat(),
                    "producer": entry.document["producer"],
                    "proved": entry.audit_path is not None,
                }
                for entry in trail.entries
            ],
        }
    )
    return 0


async def _proof(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    target = args.event_id or str(args.index)
    await service.log_access(operator(), "inclusion proof", target)
    bundle = await service.inclusion_bundle(
        index=args.index, event_id=args.event_id, tree_size=args.tree_size
    )
    _print(bundle, args.output)
    return 0


async def _consistency(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    await service.log_access(operator(), "consistency proof", f"{args.first}..{args.second}")
    _print(await service.consistency_bundle(args.first, args.second), args.output)
    return 0


async def _export(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    since, until = _moment(args.since), _moment(args.until)
    await service.log_access(operator(), "export statements of reasons", args.platform or "all")
    decided = await sources.decided_appeals(service.log, since, until, platform=args.platform)
    _print({"batches": list(transparency.batches(decided))}, args.output)
    return 0


async def _report(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    await service.log_access(operator(), "complaint-handling report", args.month)
    received, decisions = await sources.report_inputs(service.log, args.month)
    rows = complaints_report.monthly_report(received, decisions, month=args.month)
    if args.format == "csv":
        sys.stdout.write(complaints_report.to_csv(rows))
    else:
        _print({"month": args.month, "platforms": rows})
    return 0


async def _reconcile(service: AuditService, args: argparse.Namespace, cfg: AuditLogSettings) -> int:
    window = Window(_moment(args.since), _moment(args.until))
    await service.log_access(operator(), "reconcile", f"{window.since}..{window.until}")
    intake = None
    source: AcknowledgementSource = TopicAcknowledgements(cfg.kafka_bootstrap_servers)
    if args.intake_url:
        from appeals_cli import tokens

        token = args.token or tokens.ops_token("audit-reconcile")
        intake = IntakeLookup(args.intake_url, token)
        # Intake's own records, not bounded by the topics' retention, beside the topics.
        source = Either(source, IntakeAcknowledgements(args.intake_url, token))
    result = await sources.reconcile_log(service.log, source, window, intake=intake)
    _print({"ok": result.ok, **dataclasses.asdict(result)})
    return 0 if result.ok else 1


async def _forget(service: AuditService, args: argparse.Namespace, _: AuditLogSettings) -> int:
    subject = args.pseudonym
    if subject is None:
        if args.platform is None or args.user_id is None:
            raise SystemExit("appeals audit forget: give --pseudonym, or --platform and --user-id")
        secrets = service.keys.secrets
        platform = vocabulary.PLATFORMS[args.platform]
        subject = sealing.pseudonym(secrets, platform=platform, user_id=args.user_id)
    shredded = await service.forget(subject, operator())
    print(f"{subject}: {'data key shredded' if shredded else 'no data key was left'}")
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    """Needs nothing but the bundle and the verifier key: this is what third parties run."""
    raw = sys.stdin.read() if args.bundle == "-" else Path(args.bundle).read_text("utf-8")
    vkey = args.key or (Path(args.key_file).read_text("utf-8").strip() if args.key_file else "")
    if not vkey:
        raise SystemExit("appeals audit check-proof: give the log's verifier key (--key)")
    try:
        account = bundles.check(json.loads(raw), Verifier.from_vkey(vkey))
    except (InvalidProof, InvalidNote, ValueError) as error:
        print(f"INVALID: {error}")
        return 1
    print(f"OK: {account}")
    return 0


# The parser --------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Register ``audit`` and its subcommands on the top-level parser's subparsers."""
    audit = commands.add_parser(
        "audit",
        help="verify the audit log, proofs, checkpoints, exports, reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = audit.add_subparsers(dest="audit_command", required=True)

    sub.add_parser("verify", help="recompute the tree from the store").set_defaults(
        handler=_run(_verify)
    )
    sub.add_parser("checkpoint", help="sign a checkpoint now").set_defaults(
        handler=_run(_checkpoint)
    )
    sub.add_parser("key", help="print the verifier key").set_defaults(handler=_run(_key))

    trail = sub.add_parser("trail", help="an appeal's entries with proofs")
    trail.add_argument("appeal_id")
    trail.set_defaults(handler=_run(_trail))

    proof = sub.add_parser("proof", help="inclusion proof bundle of one entry")
    which = proof.add_mutually_exclusive_group(required=True)
    which.add_argument("--event-id")
    which.add_argument("--index", type=int)
    proof.add_argument("--tree-size", type=int, help="a signed size (default: the latest)")
    proof.add_argument("-o", "--output", help="write the bundle here instead of stdout")
    proof.set_defaults(handler=_run(_proof))

    consistency = sub.add_parser("consistency", help="consistency proof between checkpoints")
    consistency.add_argument("first", type=int, help="tree size of the older checkpoint")
    consistency.add_argument("second", type=int, nargs="?", help="newer one (default: latest)")
    consistency.add_argument("-o", "--output")
    consistency.set_defaults(handler=_run(_consistency))

    check = sub.add_parser("check-proof", help="check a bundle with only the verifier key")
    check.add_argument("bundle", help="bundle file, or - for stdin")
    check.add_argument("--key", help="verifier key, <name>+<id>+<key>")
    check.add_argument("--key-file", help="file holding the verifier key")
    check.set_defaults(handler=_check_proof)

    export = sub.add_parser("export", help="statements of reasons for the DSA database")
    export.add_argument("--since", required=True, help="ISO 8601, inclusive")
    export.add_argument("--until", required=True, help="ISO 8601, exclusive")
    export.add_argument("--platform", choices=sorted(vocabulary.PLATFORMS))
    export.add_argument("-o", "--output")
    export.set_defaults(handler=_run(_export))

    report = sub.add_parser("report", help="Art. 15 complaint-handling figures for a month")
    report.add_argument("--month", required=True, help="YYYY-MM (UTC)")
    report.add_argument("--format", choices=["csv", "json"], default="csv")
    report.set_defaults(handler=_run(_report))

    reconcile = sub.add_parser("reconcile", help="intake's acknowledgements vs the log")
    reconcile.add_argument("--since", required=True)
    reconcile.add_argument("--until", required=True)
    reconcile.add_argument(
        "--intake-url",
        help="also read intake's records of the window (GET /v1/appeals, not bounded by the "
        "topics' retention) and ask it about appeals only the log has",
    )
    reconcile.add_argument("--token", help="ops token for intake (default: a local dev token)")
    reconcile.set_defaults(handler=_run(_reconcile))

    forget = sub.add_parser("forget", help="crypto-shred one person's personal data")
    forget.add_argument("--pseudonym")
    forget.add_argument("--platform", choices=sorted(vocabulary.PLATFORMS))
    forget.add_argument("--user-id")
    forget.set_defaults(handler=_run(_forget))
