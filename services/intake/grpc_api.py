"""gRPC adapter of intake (`appeals.v1.Intake` on :50051)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message

from appeals import vocabulary
from appeals.v1 import appeal_pb2, intake_pb2, intake_pb2_grpc
from appeals_runtime.admission import DEFAULT_LIMIT, InHand
from appeals_runtime.auth import Role, Scope, TokenVerifier
from appeals_runtime.grpc_server import Registration, guarded, principal
from services.intake import validation
from services.intake.service import AppealIntake

# grpc ships no type information; the servicer context is untyped.
Context: TypeAlias = Any


class IntakeServicer(intake_pb2_grpc.IntakeServicer):
    def __init__(
        self, intake: AppealIntake, verifier: TokenVerifier, *, max_submits: int = DEFAULT_LIMIT
    ) -> None:
        self._intake = intake
        self._verifier = verifier
        # Submits in hand at once, as REST's admission limit (INTAKE_MAX_REQUESTS): the next
        # is refused UNAVAILABLE at once rather than queued. Only submits: the particulars
        # reads here are the pipeline's own services answering their consumers.
        self.submits = InHand(max_submits, channel="grpc")

    async def SubmitAppeal(  # noqa: N802 - name fixed by the service definition
        self, request: intake_pb2.SubmitAppealRequest, context: Context
    ) -> intake_pb2.SubmitAppealResponse:
        async def submit() -> intake_pb2.SubmitAppealResponse:
            _only_known_fields(request)
            with self.submits.admitted():
                accepted = await self._intake.submit(
                    principal(context, self._verifier),
                    request.submission,
                    idempotency_key=request.idempotency_key,
                    key_field="idempotency_key",
                    channel="grpc",
                )
            return intake_pb2.SubmitAppealResponse(
                appeal_id=accepted.appeal_id, status=appeal_pb2.APPEAL_STATUS_RECEIVED
            )

        return await guarded(context, submit)

    async def GetAppeal(  # noqa: N802
        self, request: intake_pb2.GetAppealRequest, context: Context
    ) -> intake_pb2.GetAppealResponse:
        async def get() -> intake_pb2.GetAppealResponse:
            _only_known_fields(request)
            record = await self._intake.get(principal(context, self._verifier), request.appeal_id)
            return intake_pb2.GetAppealResponse(appeal=record.to_proto())

        return await guarded(context, get)

    async def RecordEvasionIdentifiers(  # noqa: N802
        self, request: intake_pb2.RecordEvasionIdentifiersRequest, context: Context
    ) -> intake_pb2.RecordEvasionIdentifiersResponse:
        async def record() -> intake_pb2.RecordEvasionIdentifiersResponse:
            _only_known_fields(request)
            caller = principal(context, self._verifier)
            caller.require(Scope.READ, role=Role.OPS)  # before the request is looked at
            hashes = list(request.hashes)
            validation.ensure_valid(validation.evasion_hash_violations("hashes", hashes))
            added = await self._intake.add_evasion_identifiers(caller, hashes)
            return intake_pb2.RecordEvasionIdentifiersResponse(added=added)

        return await guarded(context, record)

    async def GetAppealParticulars(  # noqa: N802
        self, request: intake_pb2.GetAppealParticularsRequest, context: Context
    ) -> intake_pb2.GetAppealParticularsResponse:
        async def read() -> intake_pb2.GetAppealParticularsResponse:
            _only_known_fields(request)
            particulars = await self._intake.particulars(
                principal(context, self._verifier), request.appeal_id
            )
            return intake_pb2.GetAppealParticularsResponse(particulars=particulars)

        return await guarded(context, read)

    async def EraseAppellant(  # noqa: N802
        self, request: intake_pb2.EraseAppellantRequest, context: Context
    ) -> intake_pb2.EraseAppellantResponse:
        async def erase() -> intake_pb2.EraseAppellantResponse:
            _only_known_fields(request)
            done = await self._intake.erasures.erase_appellant(
                principal(context, self._verifier),
                vocabulary.platform_name(request.platform),
                request.user_id,
            )
            response = intake_pb2.EraseAppellantResponse(
                erasure_id=done.erasure_id, appeals_erased=done.appeals_erased
            )
            response.erased_at.FromDatetime(done.erased_at)
            return response

        return await guarded(context, erase)


def _only_known_fields(request: Message) -> None:
    """The one rule for unknown fields, at every level of every request, envelope included."""
    validation.ensure_valid(validation.unknown_field_violations(request))


def register(servicer: IntakeServicer) -> Registration:
    def add(server: grpc.aio.Server) -> None:
        intake_pb2_grpc.add_IntakeServicer_to_server(servicer, server)

    return Registration(intake_pb2.DESCRIPTOR.services_by_name["Intake"].full_name, add)
