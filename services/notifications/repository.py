"""The only module that touches the store: recipient profiles and the delivery outbox.

FerretDB 1.x has no transactions, so every effect is one insert whose unique index is also its
dedup key (:func:`store.insert_once`): a redelivered event finds its document already there.
"""

from __future__ import annotations

from typing import Any

from appeals_runtime import store
from services.notifications.model import Delivery, Recipient

RECIPIENTS = "recipients"
OUTBOX = "outbox"

INDEXES = (
    # One profile per appeal: the first submitted event wins, redeliveries are no-ops.
    store.IndexSpec(RECIPIENTS, [("appeal_id", 1)], unique=True),
    # Exactly one notification per (appeal, event), whatever the number of deliveries.
    store.IndexSpec(OUTBOX, [("appeal_id", 1), ("about_event_id", 1)], unique=True),
    store.IndexSpec(OUTBOX, [("appeal_id", 1), ("delivered_at", 1)]),
)


class NotificationsRepository:
    def __init__(self, db: store.Database) -> None:
        self._recipients = db[RECIPIENTS]
        self._outbox = db[OUTBOX]

    async def save_recipient(self, recipient: Recipient) -> bool:
        """False when the appeal's profile was already stored (a redelivered submitted event)."""
        return await store.insert_once(self._recipients, _recipient_document(recipient))

    async def recipient(self, appeal_id: str) -> Recipient | None:
        document = await store.available(self._recipients.find_one({"appeal_id": appeal_id}))
        return _recipient(document) if document is not None else None

    async def record_delivery(self, delivery: Delivery) -> bool:
        """Record a delivery; False when this (appeal, event) was already delivered."""
        return await store.insert_once(self._outbox, _delivery_document(delivery))

    async def delivery(self, appeal_id: str, about_event_id: str) -> Delivery | None:
        document = await store.available(
            self._outbox.find_one({"appeal_id": appeal_id, "about_event_id": about_event_id})
        )
        return _delivery(document) if document is not None else None

    async def deliveries(self, appeal_id: str) -> list[Delivery]:
        """Every notification of an appeal, oldest first."""
        cursor = self._outbox.find({"appeal_id": appeal_id}).sort([("delivered_at", 1), ("_id", 1)])
        return [_delivery(document) for document in await store.available(cursor.to_list())]


def _recipient_document(recipient: Recipient) -> store.Document:
    return {
        "appeal_id": recipient.appeal_id,
        "submitted_event_id": recipient.submitted_event_id,
        "platform": recipient.platform,
        "user_id": recipient.user_id,
        "locale": recipient.locale,
        "country": recipient.country,
        "subject": {"kind": recipient.subject_kind, "id": recipient.subject_id},
        "original_decision": {
            "policy": recipient.decision_policy,
            "action": recipient.decision_action,
            "automated": recipient.decision_automated,
        },
        "received_at": recipient.received_at,
    }


def _recipient(document: store.Document) -> Recipient:
    subject: dict[str, Any] = document["subject"]
    decision: dict[str, Any] = document["original_decision"]
    return Recipient(
        appeal_id=document["appeal_id"],
        submitted_event_id=document["submitted_event_id"],
        platform=document["platform"],
        user_id=document["user_id"],
        locale=document["locale"],
        country=document["country"],
        subject_kind=subject["kind"],
        subject_id=subject["id"],
        decision_policy=decision["policy"],
        decision_action=decision["action"],
        decision_automated=decision["automated"],
        received_at=document["received_at"],
    )


def _delivery_document(delivery: Delivery) -> store.Document:
    return {
        "appeal_id": delivery.appeal_id,
        "about_event_id": delivery.about_event_id,
        "kind": delivery.kind,
        "template": delivery.template,
        "channel": delivery.channel,
        "platform": delivery.platform,
        "locale": delivery.locale,
        "recipient": delivery.recipient,
        "subject": delivery.subject,
        "body": delivery.body,
        "payload": delivery.payload,
        "delivered_at": delivery.delivered_at,
    }


def _delivery(document: store.Document) -> Delivery:
    return Delivery(
        appeal_id=document["appeal_id"],
        about_event_id=document["about_event_id"],
        kind=document["kind"],
        template=document["template"],
        channel=document["channel"],
        platform=document["platform"],
        locale=document["locale"],
        recipient=document["recipient"],
        subject=document["subject"],
        body=document["body"],
        payload=document["payload"],
        delivered_at=document["delivered_at"],
    )
