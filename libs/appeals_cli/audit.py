"""`appeals audit ...`: the operator's and the third party's tools for the audit log.

  appeals audit verify                     recompute the whole tree; exit 1 if bad
  appeals audit checkpoint                 sign a checkpoint now (the service also files it)
  appeals audit key                        the verifier key third parties check checkpoints with
  appeals audit trail APPEAL_ID            an appeal's entries, with inclusion proofs
  appeals audit proof --event-id ID        an inclusion proof bundle (JSON) for one entry
  appeals audit consistency FIRST [SECOND] a consistency proof bundle between two checkpoints
  appeals audit check-proof FILE --key K   check a bundle with only the verifier key (no service)
  appeals audit export --since --until     statements of reasons (DSA database fields), JSON
  appeals audit report --month YYYY-MM     Art. 15 complaint-handling figures, CSV or JSON
  appeals audit reconcile --since --until  intake's acknowledgements vs the log, by appeal id
  appeals audit forget --pseudonym P       crypto-shred one person's personal data

Every command but ``check-proof`` asks the audit service's REST API (``--audit-url``, default
``$APPEALS_AUDIT_URL`` or the local ``make run`` one) with an ops token (``--token``, default a
local DEVELOPMENT-ONLY one), and the service records each read in the log under the token's
subject. ``reconcile`` compares the log with the topics and with intake's own records, which the
audit service reads at its ``AUDIT_INTAKE_URL`` with this command's token (``--topics-only``
leaves intake out; the ``--intake-url`` of earlier versions is accepted and ignored).
``check-proof`` needs only the bundle and the verifier key: it runs the library third parties
run (:mod:`appeals_proofs`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from appeals import vocabulary
from appeals_cli.answers import moment, problem
from appeals_proofs import bundles
from appeals_proofs.proofs import InvalidProof
from appeals_proofs.signed_note import InvalidNote, Verifier

DEFAULT_AUDIT_URL = os.environ.get("APPEALS_AUDIT_URL", "http://127.0.0.1:8083")
TIMEOUT_S = 120.0


class AuditApiError(Exception):
    """The audit service refused or could not answer; the message says what it said."""


class AuditApi:
    """The audit service's REST API with the operator's token."""

    def __init__(self, base_url: str, token: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        wanted = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = httpx.request(
                method, f"{self._base_url}{path}", params=wanted, json=body,
                headers=self._headers, timeout=TIMEOUT_S,
            )  # fmt: skip
        except httpx.HTTPError as error:
            raise AuditApiError(
                f"cannot reach the audit service at {self._base_url}: {error}"
            ) from error
        if response.status_code >= 400:
            raise AuditApiError(problem(response, "the audit service"))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()


def _print(data: Any, output: str | None = None) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
        print(f"written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


Command = Callable[[AuditApi, argparse.Namespace], int]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        token = args.token
        if token is None:
            from appeals_cli import tokens

            token = tokens.ops_token("audit-cli")
        try:
            return command(AuditApi(args.audit_url, token), args)
        except AuditApiError as error:
            print(error, file=sys.stderr)
            return 1

    return handler


# Commands ----------------------------------------------------------------------------------


def _verify(api: AuditApi, _: argparse.Namespace) -> int:
    result = api.json("GET", "/v1/audit/verify")
    _print(result)
    return 0 if result.get("ok") else 1


def _checkpoint(api: AuditApi, _: argparse.Namespace) -> int:
    signed = api.json("POST", "/v1/audit/checkpoints")
    sys.stdout.write(signed["note"])
    print(f"tree size {signed['tree_size']}", file=sys.stderr)
    return 0


def _key(api: AuditApi, _: argparse.Namespace) -> int:
    print(api.json("GET", "/v1/audit/key")["verifier_key"])
    return 0


def _trail(api: AuditApi, args: argparse.Namespace) -> int:
    trail = api.json("GET", f"/v1/appeals/{args.appeal_id}/trail")
    _print(
        {
            "appeal_id": trail["appeal_id"],
            "tree_size": trail["tree_size"],
            "entries": [
                {
                    "index": entry["index"],
                    "type": entry["type"],
                    "occurred_at": datetime.fromisoformat(entry["occurred_at"]).isoformat(),
                    "producer": entry["producer"],
                    "proved": entry["audit_path"] is not None,
                }
                for entry in trail["entries"]
            ],
        }
    )
    return 0


def _proof(api: AuditApi, args: argparse.Namespace) -> int:
    params = {"index": args.index, "event_id": args.event_id, "tree_size": args.tree_size}
    _print(api.json("GET", "/v1/audit/proofs/inclusion", params=params), args.output)
    return 0


def _consistency(api: AuditApi, args: argparse.Namespace) -> int:
    params = {"first": args.first, "second": args.second}
    _print(api.json("GET", "/v1/audit/proofs/consistency", params=params), args.output)
    return 0


def _export(api: AuditApi, args: argparse.Namespace) -> int:
    params = {"since": moment(args.since), "until": moment(args.until), "platform": args.platform}
    _print(api.json("GET", "/v1/audit/exports/statements-of-reasons", params=params), args.output)
    return 0


def _report(api: AuditApi, args: argparse.Namespace) -> int:
    params = {"month": args.month, "format": args.format}
    response = api.call("GET", "/v1/audit/reports/complaint-handling", params=params)
    if args.format == "csv":
        sys.stdout.write(response.text)
    else:
        _print(response.json())
    return 0


def _reconcile(api: AuditApi, args: argparse.Namespace) -> int:
    if args.intake_url:
        print(
            "note: --intake-url is ignored: the audit service reads intake's records at its own "
            "AUDIT_INTAKE_URL with this command's token (--topics-only leaves them out)",
            file=sys.stderr,
        )
    params = {
        "since": moment(args.since),
        "until": moment(args.until),
        "intake": "false" if args.topics_only else "true",
    }
    result = api.json("GET", "/v1/audit/reconciliation", params=params)
    _print(result)
    return 0 if result["ok"] else 1


def _forget(api: AuditApi, args: argparse.Namespace) -> int:
    if args.pseudonym is not None:
        body: dict[str, str] = {"pseudonym": args.pseudonym}
    elif args.platform is not None and args.user_id is not None:
        body = {"platform": args.platform, "user_id": args.user_id}
    else:
        raise SystemExit("appeals audit forget: give --pseudonym, or --platform and --user-id")
    forgotten = api.json("POST", "/v1/audit/erasures", body=body)
    shredded = "data key shredded" if forgotten["shredded"] else "no data key was left"
    print(f"{forgotten['pseudonym']}: {shredded}")
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
    audit.add_argument("--audit-url", default=DEFAULT_AUDIT_URL, help="the audit service's URL")
    audit.add_argument("--token", help="ops token (default: a local DEV-ONLY one)")
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
        "--topics-only",
        action="store_true",
        help="compare with the topics only, not with intake's own records (which the audit "
        "service reads with this command's token: AUDIT_INTAKE_URL)",
    )
    # Kept from when the command read the store itself: the token goes to the audit service
    # (which reads intake with it), and intake's URL is the service's AUDIT_INTAKE_URL.
    reconcile.add_argument(
        "--token", default=argparse.SUPPRESS, help="ops token (as `appeals audit --token`)"
    )
    reconcile.add_argument("--intake-url", help="ignored: the service's AUDIT_INTAKE_URL is used")
    reconcile.set_defaults(handler=_run(_reconcile))

    forget = sub.add_parser("forget", help="crypto-shred one person's personal data")
    forget.add_argument("--pseudonym")
    forget.add_argument("--platform", choices=sorted(vocabulary.PLATFORMS))
    forget.add_argument("--user-id")
    forget.set_defaults(handler=_run(_forget))
