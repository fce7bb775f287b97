"""A signed webhook, for product surfaces that deliver notifications themselves.

We POST the rendered message as JSON; the surface checks ``X-Appeals-Signature`` (see
:mod:`services.notifications.signature`) and answers 2xx once it has taken the message. It
deduplicates on ``X-Appeals-Delivery`` (also ``delivery_id`` in the body), because a crash between
its answer and our outbox record makes us send the same delivery again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import ClassVar

import httpx

from services.notifications.channels.base import TransientFailure
from services.notifications.channels.platforms import http_failure
from services.notifications.model import Outgoing, ProviderPayload, Recipient, RenderedMessage
from services.notifications.signature import DELIVERY_HEADER, SIGNATURE_HEADER, signature_header


class WebhookChannel:
    name: ClassVar[str] = "webhook"

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: bytes,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._url = url
        self._secret = secret
        self._clock = clock

    def address(self, recipient: Recipient) -> str | None:
        # The surface knows its own users: it is addressed by their id on its platform.
        return recipient.user_id

    def render(
        self, recipient: Recipient, message: RenderedMessage, *, address: str, delivery_id: str
    ) -> ProviderPayload:
        return {
            "delivery_id": delivery_id,
            "appeal_id": recipient.appeal_id,
            "platform": recipient.platform,
            "user_id": address,
            "template": message.template,
            "locale": message.locale,
            "direction": message.direction,
            "subject": message.subject,
            "body": message.body,
            "parameters": dict(message.parameters),
        }

    async def send(self, outgoing: Outgoing) -> None:
        body = json.dumps(outgoing.payload, ensure_ascii=False, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature_header(self._secret, int(self._clock()), body),
            DELIVERY_HEADER: outgoing.delivery_id,
            "Idempotency-Key": outgoing.delivery_id,
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise TransientFailure(f"{type(error).__name__}: {error}") from error
        if not response.is_success:
            raise http_failure(response)
