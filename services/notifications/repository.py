"""The only module that touches the store: recipient profiles, milestones and the outbox.

FerretDB 1.x has no transactions, so every effect is one insert whose unique index is also its
dedup key (:func:`store.insert_once`): a redelivered event finds its document already there.

Nothing stored here is personal data: profiles hold the appellant's pseudonym, the outbox names
which address a message went to (``user_id``, ``email``, ``phone``), not the address; intake
alone keeps those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appeals_runtime import store
from services.notifications.model import Delivery, NotificationKind, Recipient

RECIPIENTS = "recipients"
OUTBOX = "outbox"
MILESTONES = "milestones"

INDEXES = (
    # One profile per appeal: the first submitted event wins, redeliveries are no-ops.
    store.IndexSpec(RECIPIENTS, [("appeal_id", 1)], unique=True),
    # Exactly one notification per (appeal, event), whatever the number of deliveries.
    store.IndexSpec(OUTBOX, [("appeal_id", 1), ("about_event_id", 1)], unique=True),
    store.IndexSpec(OUTBOX, [("appeal_id", 1), ("delivered_at", 1)]),
    # Daily limits count a person's deliveries since the start of their day.
    store.IndexSpec(OUTBOX, [("person", 1), ("delivered_at", 1)]),
    # Once-per-appeal kinds ("in review" after the first claim only): the first event wins.
    store.IndexSpec(MILESTONES, [("appeal_id", 1), ("kind", 1)], unique=True),
)


class NotificationsRepository:
    def __init__(self, db: store.Database) -> None:
        self._recipients = db[RECIPIENTS]
        self._outbox = db[OUTBOX]
        self._milestones = db[MILESTONES]

    async def save_recipient(self, recipient: Recipient) -> bool:
        """False when the appeal's profile was already stored (a redelivered submitted event)."""
        return await store.insert_once(self._recipients, _recipient_document(recipient))

    async def recipient(self, appeal_id: str) -> Recipient | None:
        document = await store.available(self._recipients.find_one({"appeal_id": appeal_id}))
        return _recipient(document) if document is not None else None

    async def forget_personal_copies(self) -> int:
        """Remove the user ids and contacts that profiles stored before intake became their
        only holder; how many profiles held some."""
        result = await store.available(
            self._recipients.update_many(
                {"$or": [{"contact": {"$exists": True}}, {"user_id": {"$exists": True}}]},
                {"$unset": {"contact": "", "user_id": ""}},
            )
        )
        return int(result.modified_count)

    async def claim_milestone(
        self, appeal_id: str, kind: NotificationKind, about_event_id: str
    ) -> bool:
        """True when ``about_event_id`` is the event that tells the person about ``kind`` (now
        or on an earlier attempt); False when another event of the same kind already does."""
        document = {"appeal_id": appeal_id, "kind": kind, "about_event_id": about_event_id}
        if await store.insert_once(self._milestones, document):
            return True
        holder = await store.available(
            self._milestones.find_one({"appeal_id": appeal_id, "kind": kind})
        )
        return holder is not None and holder["about_event_id"] == about_event_id

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

    async def delivered_since(self, person: str, since: datetime) -> int:
        return await store.available(
            self._outbox.count_documents({"person": person, "delivered_at": {"$gte": since}})
        )

    async def decision_delivered(self, appeal_id: str) -> bool:
        found = await store.available(
            self._outbox.find_one({"appeal_id": appeal_id, "kind": "decided"}, {"_id": 1})
        )
        return found is not None


def _recipient_document(recipient: Recipient) -> store.Document:
    # Never the user id or contact: they are read from intake for each send.
    return {
        "appeal_id": recipient.appeal_id,
        "submitted_event_id": recipient.submitted_event_id,
        "platform": recipient.platform,
        "person": recipient.person,
        "locale": recipient.locale,
        "country": recipient.country,
        "subject": {"kind": recipient.subject_kind, "id": recipient.subject_id},
        "original_decision": {
            "policy": recipient.decision_policy,
            "action": recipient.decision_action,
            "automated": recipient.decision_automated,
            "decided_at": recipient.decision_made_at,
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
        user_id="",
        locale=document["locale"],
        country=document["country"],
        subject_kind=subject["kind"],
        subject_id=subject["id"],
        decision_policy=decision["policy"],
        decision_action=decision["action"],
        decision_automated=decision["automated"],
        received_at=document["received_at"],
        decision_made_at=decision.get("decided_at"),
        person=document.get("person", ""),
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
        "delivery_id": delivery.delivery_id,
        "person": delivery.person,
        "attempt": delivery.attempt,
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
        delivery_id=document.get("delivery_id", ""),
        person=document.get("person", ""),
        attempt=document.get("attempt", 1),
    )
