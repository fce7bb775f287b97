"""REST adapter of intake: HTTP in, the same submit path as gRPC and Kafka out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appeals.v1 import appeal_pb2
from appeals_runtime.admission import DEFAULT_LIMIT, AdmissionLimit
from appeals_runtime.auth import TokenVerifier
from appeals_runtime.errors import FieldViolation, ValidationFailed
from appeals_runtime.http import (
    TELEMETRY,
    Caller,
    health_router,
    install_problem_handlers,
    invalid_request_problem,
    problem,
)
from appeals_runtime.readiness import ReadinessCheck
from services.intake import openapi_docs, validation
from services.intake.schemas import (
    AppealAccepted,
    AppealIn,
    AppealView,
    ErasureDone,
    ErasureIn,
    InformationAccepted,
    InformationIn,
    ReceivedAppeal,
    ReceivedPage,
    appeal_view,
)
from services.intake.service import CURSOR_PATTERN, AppealIntake, count_rejection

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        description="The same key with the same body replays the first answer.",
        examples=["9f1c4d2a-7b3e-4e8f-a1c6-2d5e8b9f0a13"],
        min_length=1,
        max_length=validation.MAX_IDEMPOTENCY_KEY_CHARS,
        pattern=validation.IDEMPOTENCY_KEY_PATTERN,
    ),
]


AppealId = Annotated[
    str,
    Path(
        min_length=1, max_length=validation.MAX_ID_CHARS, pattern=validation.ID_PATTERN,
        examples=["ap_3f0c2a9d41b7e8c5a6d2f19e0b"],
    ),
]  # fmt: skip


class EvasionIdentifiers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hashes: list[Annotated[str, Field(pattern=validation.HASH_HINT_PATTERN)]] = Field(
        min_length=1, max_length=1000
    )


class BodyRules:
    """Answers a body the app must not see before it does: 413 (problem+json) to one over the
    limit, 415 to one declared in a charset other than UTF-8 and 400 to one that is not UTF-8
    (RFC 8259 §8.1: JSON exchanged between systems is UTF-8; parsers that guess UTF-16 or -32
    from the first bytes would otherwise take it).

    A plain ASGI middleware that reads the body itself, at most ``max_body_bytes`` of it, and
    hands it on whole. The ``@app.middleware`` wrapper it replaces read a chunked upload to its
    end before measuring it (any size, into memory) and ran every request through an extra task
    and memory stream; this one adds nothing that could fail or wait to a request.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self._app = app
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            await self._too_large(scope, receive, send)
            return
        charset = _charset(headers.get("content-type", ""))
        if charset not in (None, "utf-8", "utf8"):
            refused = problem(
                415, "Unsupported media type",
                f"JSON bodies are UTF-8 (RFC 8259 §8.1), not {charset}",
            )  # fmt: skip
            await refused(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        whole = b"".join(chunks)
        try:
            whole.decode("utf-8")
        except UnicodeDecodeError as error:
            refused = problem(
                400, "Invalid request",
                f"the body is not UTF-8 (byte {error.start}); JSON bodies are UTF-8 "
                "(RFC 8259 §8.1)",
            )  # fmt: skip
            await refused(scope, receive, send)
            return
        body: Message | None = {"type": "http.request", "body": whole}

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: only a disconnect can come
            message, body = body, None
            return message

        await self._app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Payload too large", f"bodies are limited to {self._max} bytes")
        await response(scope, receive, send)


def _charset(content_type: str) -> str | None:
    """The charset a Content-Type names, lower case; None when it names none."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _as_proto(body: AppealIn) -> appeal_pb2.AppealSubmission:
    try:
        return body.to_proto()
    except (ValueError, OverflowError) as error:
        # e.g. a date that leaves the representable range once converted to UTC
        raise ValidationFailed(
            [FieldViolation("body", f"cannot be represented: {error}")]
        ) from None


def create_app(
    intake: AppealIntake,
    verifier: TokenVerifier,
    readiness_checks: dict[str, ReadinessCheck],
    *,
    max_body_bytes: int = 64 * 1024,
    max_requests: int = DEFAULT_LIMIT,
) -> FastAPI:
    app = FastAPI(
        title="Appeals intake",
        version="1.0",
        summary="Submit and look up appeals against moderation decisions.",
        telemetry=TELEMETRY,
    )
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router(readiness_checks))

    app.add_middleware(BodyRules, max_body_bytes=max_body_bytes)
    # Outside the body rules: a request beyond the limit is refused before its body is read.
    app.add_middleware(AdmissionLimit, limit=max_requests)

    @app.exception_handler(RequestValidationError)
    async def count_invalid_submits(request: Request, error: RequestValidationError) -> Response:
        # The schema refuses an invalid submit before intake sees it: counted here, as intake
        # counts what it refuses itself (appeals.intake.rejected{reason=invalid, channel=rest}).
        if request.method == "POST" and request.url.path == "/v1/appeals":
            count_rejection(ValidationFailed([]), channel="rest")
        return invalid_request_problem(error)

    @app.post(
        "/v1/appeals",
        status_code=202,
        response_model=AppealAccepted,
        responses=openapi_docs.SUBMIT_RESPONSES,
        summary="Submit an appeal",
    )
    async def submit_appeal(
        body: Annotated[AppealIn, Body(examples=[openapi_docs.EXAMPLE_APPEAL])],
        principal: Caller,
        idempotency_key: IdempotencyKey,
    ) -> JSONResponse:
        accepted = await intake.submit(
            principal,
            _as_proto(body),
            idempotency_key=idempotency_key,
            key_field="Idempotency-Key",
            channel="rest",
        )
        return JSONResponse(accepted.as_response(), status_code=202)

    @app.get(
        "/v1/appeals",
        response_model=ReceivedPage,
        responses=openapi_docs.LIST_RESPONSES,
        summary="List the appeals acknowledged in a window of reception time (ops)",
    )
    async def list_received(
        principal: Caller,
        received_after: Annotated[AwareDatetime, Query(description="inclusive, with an offset")],
        received_before: Annotated[
            AwareDatetime, Query(description="exclusive; the window spans at most 31 days (422)")
        ],
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> ReceivedPage:
        """Every appeal intake acknowledged (the broker had its submitted event) whose reception
        time falls in the window, by minute then id, a page at a time: follow `next_cursor`
        until it is null. What reconciliation compares the audit log with, for as long as
        intake keeps its records (not bounded by the broker's retention)."""
        page = await intake.received(
            principal, received_after, received_before, cursor=cursor, limit=limit
        )
        return ReceivedPage(
            appeals=[
                ReceivedAppeal(appeal_id=item.appeal_id, received_at=item.received_at)
                for item in page.appeals
            ],
            next_cursor=page.next_cursor,
        )

    @app.get(
        "/v1/appeals/{appeal_id}",
        response_model=AppealView,
        responses=openapi_docs.GET_RESPONSES,
        summary="Look up an appeal and its status",
    )
    async def get_appeal(appeal_id: AppealId, principal: Caller) -> dict[str, Any]:
        return appeal_view(await intake.get(principal, appeal_id))

    @app.post(
        "/v1/appeals/{appeal_id}/information",
        status_code=202,
        response_model=InformationAccepted,
        responses=openapi_docs.INFORMATION_RESPONSES,
        summary="Answer a reviewer's request for more information",
    )
    async def provide_information(
        appeal_id: AppealId, body: InformationIn, principal: Caller
    ) -> InformationAccepted:
        """The appellant's answer (text and attachments, the submit's limits) to the open request
        for information; accepted once the broker has it, then the case returns to its queue
        and the reviewer who claims it reads the answer. 409 `not_awaiting_information` when no
        request is open (never asked, already answered, or its window ended)."""
        answered = await intake.provide_information(
            principal, appeal_id, answer=body.answer, attachments=body.attachments_proto()
        )
        return InformationAccepted(appeal_id=appeal_id, answered_request=answered)

    @app.post(
        "/v1/erasures",
        response_model=ErasureDone,
        responses=openapi_docs.ERASURE_RESPONSES,
        summary="Forget an appellant: erase their personal data (GDPR Art. 17)",
    )
    async def erase_appellant(body: ErasureIn, principal: Caller) -> ErasureDone:
        """Erases what intake keeps about the person on every appeal of theirs (user id,
        contact details, statement, attachment links, answers to requests for information) and
        forgets whose their pseudonym was, so nothing the pipeline keeps leads back to them; the
        appeals themselves (status, facts, decisions) and the audit log stay. Each appeal's
        erasure is announced (`particulars_erased`) and logged by audit. Idempotent: repeat it
        after an error. A surface may erase its platforms' users, ops anyone."""
        done = await intake.erasures.erase_appellant(principal, body.platform, body.user_id)
        return ErasureDone(
            erasure_id=done.erasure_id, appeals_erased=done.appeals_erased,
            erased_at=done.erased_at,
        )  # fmt: skip

    @app.post(
        "/v1/ban-evasion/identifiers",
        responses=openapi_docs.EVASION_RESPONSES,
        summary="Record hashed identifiers of accounts removed for ban evasion (ops)",
    )
    async def add_evasion_identifiers(
        body: EvasionIdentifiers, principal: Caller
    ) -> dict[str, int]:
        return {"added": await intake.add_evasion_identifiers(principal, body.hashes)}

    return app
