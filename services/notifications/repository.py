"""The only module that touches the store: profiles, the outbox, what each person was told, and
the daily slots.

Every operation names its documents by ``_id``, so its cost does not grow with the history the
store holds (FerretDB answers only ``_id`` filters from an index; everything else scans it).

Every document is **written once and never updated**. FerretDB 1.x runs an update as a plain
read followed by a separate write of the whole document, so two concurrent updates of one
document (a conditional one included) can both apply to the same old version and one is lost.
An insert is safe: the ``_id`` is unique, and :func:`store.insert_once` turns a duplicate into
"already there". So each fact is its own document under an ``_id`` derived from what it is about:

* ``recipients``, ``_id`` = appeal id: the recipient profile from the submitted event. Its
  submitted event is also the one that tells the person their appeal arrived (the "received"
  milestone).
* ``outbox``, ``_id`` = ``"<appeal id>/<event id>"``: one notification, recorded right after
  the channel took it; the insert is the record and its dedup key in one write.
* ``told``, what the person was told of one appeal:
  ``"<appeal id>/first/<kind>"``: the event that tells them about ``kind`` first (claimed before
  sending for the once-per-appeal kinds; for ``decided``, written once a decision reached them);
  ``"<appeal id>/<n>"``: the n-th notification recorded (0, 1, ...), which the ops API lists.
* ``daily_slots``, ``_id`` = ``"<person>/<local date>/<i>"``: slot ``i`` of a person's daily
  limit, held by one non-urgent notification (taken before sending, given back if nothing could
  be delivered).
* ``migrations``, ``_id`` = a one-off migration's name: it ran.

Nothing stored here is personal data: profiles hold the appellant's pseudonym, the outbox names
which address a message went to (``user_id``, ``email``, ``phone``), not the address; intake
alone keeps those.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date
from typing import Any

from appeals_runtime import store
from services.notifications.concurrently import both
from services.notifications.model import (
    NOTIFICATION_KINDS,
    Delivery,
    NotificationKind,
    Recipient,
    Told,
)

log = logging.getLogger(__name__)

RECIPIENTS = "recipients"
OUTBOX = "outbox"
TOLD = "told"
DAILY_SLOTS = "daily_slots"
MIGRATIONS = "migrations"
# One-time verification codes sent for the live-help service (see codes.py).
CODES = "codes"
# The shapes before id keys kept milestones here.
OLD_MILESTONES = "milestones"

# Every document is found by its _id; no secondary index is read, so none is kept (each one
# would cost every insert). The _id's uniqueness is every dedup key.
INDEXES: tuple[store.IndexSpec, ...] = ()

# The one-off migration from the shapes before id keys (see :meth:`migrate_stored_shapes`).
ID_KEYS_MIGRATION = "id-keys-v1"
# Secondary indexes of those shapes: dropped, since nothing reads them any more.
_OLD_INDEXES = {
    RECIPIENTS: ("appeal_id_1",),
    OUTBOX: (
        "appeal_id_1_about_event_id_1",
        "appeal_id_1_delivered_at_1",
        "person_1_delivered_at_1",
    ),
}
# Positions of an appeal's notification list read at once (most appeals have fewer).
_TOLD_CHUNK = 12
# Old documents read back by _id at once during the migration.
_MIGRATION_CHUNK = 200


def outbox_id(appeal_id: str, about_event_id: str) -> str:
    """The outbox record's _id: one notification per (appeal, event)."""
    return f"{appeal_id}/{about_event_id}"


def first_id(appeal_id: str, kind: NotificationKind) -> str:
    return f"{appeal_id}/first/{kind}"


def told_id(appeal_id: str, position: int) -> str:
    return f"{appeal_id}/{position}"


def daily_slot_id(person: str, day: date, index: int) -> str:
    return f"{person}/{day.isoformat()}/{index}"


def _daily_slot(person: str, day: date, index: int, holder: str) -> store.Document:
    return {
        "_id": daily_slot_id(person, day, index),
        "person": person,
        "day": day.isoformat(),
        "holder": holder,
    }


class NotificationsRepository:
    def __init__(self, db: store.Database) -> None:
        self._db = db
        self._recipients = db[RECIPIENTS]
        self._outbox = db[OUTBOX]
        self._told = db[TOLD]
        self._daily_slots = db[DAILY_SLOTS]
        self._migrations = db[MIGRATIONS]
        self._codes = db[CODES]

    # --- verification codes --------------------------------------------------------------------

    async def code_sent(self, request_id: str) -> store.Document | None:
        """The record of a verification code sent under ``request_id``, if one was."""
        return await store.available(self._codes.find_one({"_id": request_id}))

    async def record_code(self, document: store.Document) -> bool:
        """Record a sent code once (``_id`` = its request id); False when already recorded."""
        return await store.insert_once(self._codes, document)

    # --- profiles ------------------------------------------------------------------------------

    async def save_recipient(self, recipient: Recipient) -> bool:
        """False when the appeal's profile was already stored (a redelivered submitted event:
        the first one's profile stays)."""
        return await store.insert_once(self._recipients, _recipient_document(recipient))

    async def recipient(self, appeal_id: str) -> Recipient | None:
        document = await store.available(self._recipients.find_one({"_id": appeal_id}))
        return _recipient(document) if document is not None else None

    async def appeal(
        self, appeal_id: str, about_event_id: str
    ) -> tuple[Recipient | None, Delivery | None, Told]:
        """What one notice needs to know, read side by side: the appeal's profile, the notice's
        own delivery if recorded, and what the person was told so far."""
        (recipient, delivered), told = await both(
            both(self.recipient(appeal_id), self.delivery(appeal_id, about_event_id)),
            self._told_so_far(appeal_id),
        )
        if recipient is not None:
            # The profile's submitted event holds the "received" milestone.
            told = Told({**told.firsts, "received": recipient.submitted_event_id}, told.timeline)
        return recipient, delivered, told

    # --- milestones ----------------------------------------------------------------------------

    async def claim_milestone(
        self, appeal_id: str, kind: NotificationKind, about_event_id: str
    ) -> bool:
        """True when ``about_event_id`` is the event that tells the person about ``kind`` (now
        or on an earlier attempt); False when another event of the same kind already does."""
        document = {"_id": first_id(appeal_id, kind), "about_event_id": about_event_id}
        if await store.insert_once(self._told, document):
            return True
        holder = await store.available(self._told.find_one({"_id": document["_id"]}))
        return holder is not None and holder["about_event_id"] == about_event_id

    # --- the outbox ----------------------------------------------------------------------------

    async def record_delivery(self, delivery: Delivery, told: Told) -> bool:
        """Record a delivery; False when this (appeal, event) was already delivered.

        ``told`` is what was read before sending: it says at which position of the appeal's
        list the delivery goes (:meth:`note_delivered`, written beside the outbox record).
        """
        first, _ = await both(
            store.insert_once(self._outbox, _delivery_document(delivery)),
            self.note_delivered(delivery, told),
        )
        return first

    async def note_delivered(self, delivery: Delivery, told: Told) -> None:
        """What a recorded delivery tells later notices: its place in the appeal's list (for
        the ops API) and, for the first decision, that a decision reached the person. Both are
        inserts, so a repeat (after a crash, or racing another attempt) changes nothing."""
        appeal_id, about = delivery.appeal_id, delivery.about_event_id
        if delivery.kind == "decided" and "decided" not in told.firsts:
            first = {"_id": first_id(appeal_id, "decided"), "about_event_id": about}
            await store.insert_once(self._told, first)
        if about in told.timeline:
            return
        position = len(told.timeline)
        # A position taken meanwhile (another attempt of the appeal): the next one.
        while not await store.insert_once(
            self._told, {"_id": told_id(appeal_id, position), "about_event_id": about}
        ):
            position += 1

    async def delivery(self, appeal_id: str, about_event_id: str) -> Delivery | None:
        document = await store.available(
            self._outbox.find_one({"_id": outbox_id(appeal_id, about_event_id)})
        )
        return _delivery(document) if document is not None else None

    async def notifications_of(self, appeal_id: str) -> list[Delivery] | None:
        """Every notification of an appeal, oldest first; None when the appeal is unknown here.
        Reads by _id only: the profile beside the appeal's list, then the listed records."""
        recipient, told = await both(self.recipient(appeal_id), self._told_so_far(appeal_id))
        if recipient is None:
            return None
        if not told.timeline:
            return []
        ids = [outbox_id(appeal_id, about) for about in told.timeline]
        documents = await store.available(self._outbox.find({"_id": {"$in": ids}}).to_list())
        # The list's order (the order recorded) breaks ties in time.
        position = {identifier: index for index, identifier in enumerate(ids)}
        documents.sort(key=lambda document: (document["delivered_at"], position[document["_id"]]))
        return [_delivery(document) for document in documents]

    async def deliveries(self, appeal_id: str) -> list[Delivery]:
        """Every notification of an appeal, oldest first (none for an unknown appeal)."""
        return await self.notifications_of(appeal_id) or []

    async def _told_so_far(self, appeal_id: str) -> Told:
        """The appeal's milestones and its list of notifications, in one read by _id (more
        only for an appeal with a long list)."""
        firsts: dict[NotificationKind, str] = {}
        timeline: list[str] = []
        # ("received" is held by the profile, read beside this: see :meth:`appeal`.)
        wanted = [first_id(appeal_id, kind) for kind in NOTIFICATION_KINDS if kind != "received"]
        while True:
            start = len(timeline)
            positions = [told_id(appeal_id, n) for n in range(start, start + _TOLD_CHUNK)]
            found = {
                document["_id"]: document["about_event_id"]
                for document in await store.available(
                    self._told.find({"_id": {"$in": wanted + positions}}).to_list()
                )
            }
            for kind in NOTIFICATION_KINDS:
                if first_id(appeal_id, kind) in found:
                    firsts[kind] = found[first_id(appeal_id, kind)]
            for identifier in positions:
                if identifier not in found:
                    return Told(firsts, tuple(timeline))
                # Two attempts racing may both have listed one notification: list it once.
                if found[identifier] not in timeline:
                    timeline.append(found[identifier])
            wanted = []

    # --- daily limits --------------------------------------------------------------------------

    async def reserve_daily_slot(
        self,
        person: str,
        day: date,
        *,
        appeal_id: str,
        about_event_id: str,
        limit: int,
        holds_none: bool = False,
    ) -> str | None:
        """Take one of ``person``'s ``limit`` slots of ``day`` for the notification about
        (``appeal_id``, ``about_event_id``): the slot's id, or None when all are taken by other
        notifications.

        Slot ``i`` is a document of its own, so taking it is an insert that only one taker can
        win, whatever the number of concurrent handlers or instances: the limit is never
        passed. A notification that holds a slot already (redelivered, retried) keeps it.

        ``holds_none``: the caller knows this notification holds no slot yet (its first
        attempt), so the person's first slot of the day is tried at once, one insert instead of
        a read and an insert for a person's first message of the day (most people's only one);
        when it is taken, the slots are read as usual.
        """
        holder = outbox_id(appeal_id, about_event_id)
        if holds_none and limit > 0:
            first = _daily_slot(person, day, 0, holder)
            if await store.insert_once(self._daily_slots, first):
                return str(first["_id"])
        ids = [daily_slot_id(person, day, index) for index in range(limit)]
        held: dict[str, str] = {
            document["_id"]: document["holder"]
            for document in await store.available(
                self._daily_slots.find({"_id": {"$in": ids}}).to_list()
            )
        }
        for identifier in ids:
            if held.get(identifier) == holder:
                return identifier
        for index, identifier in enumerate(ids):
            if identifier in held:
                continue
            slot = _daily_slot(person, day, index, holder)
            if await store.insert_once(self._daily_slots, slot):
                return identifier
            # Taken meanwhile by another notification: try the next free one.
        return None

    async def release_daily_slot(self, slot: str, *, appeal_id: str, about_event_id: str) -> None:
        """Give a slot back (its notification could not be delivered on any channel)."""
        holder = outbox_id(appeal_id, about_event_id)
        await store.available(self._daily_slots.delete_one({"_id": slot, "holder": holder}))

    # --- one-off migrations --------------------------------------------------------------------

    async def migrate_stored_shapes(self) -> bool:
        """Rewrite documents of the shapes before id keys, once per store; True when it ran.

        Those shapes: profiles and outbox records under ObjectIds, found by ``appeal_id``;
        milestones in their own collection; secondary indexes to find them; profiles that may
        still hold a user id or contact (from before intake became their only holder). The
        rewrite scans them once (a local store from ``make run``); a marker keyed by _id then
        makes every later start a single lookup. It can be interrupted: every step is an
        idempotent insert or a delete of what was moved, and the marker is written last. The
        daily limit starts afresh (deliveries before the upgrade do not count against it).
        """
        if await store.available(self._migrations.find_one({"_id": ID_KEYS_MIGRATION})):
            return False
        await self._drop_old_indexes()
        old_milestones = self._db[OLD_MILESTONES]
        moved = {
            "profiles": await self._move_profiles(),
            "milestones": await self._move_milestones(old_milestones),
            "deliveries": await self._move_deliveries(),
        }
        await store.available(old_milestones.drop())
        await store.insert_once(self._migrations, {"_id": ID_KEYS_MIGRATION})
        log.info("stored documents moved to id keys", extra=moved)
        return True

    async def _drop_old_indexes(self) -> None:
        for collection, names in _OLD_INDEXES.items():
            existing = {index["name"] async for index in await self._db[collection].list_indexes()}
            for name in sorted(existing & set(names)):
                await store.available(self._db[collection].drop_index(name))

    async def _move_profiles(self) -> int:
        moved = 0
        async for document in _old_documents(self._recipients):
            # Never carried over: user ids and contacts are intake's alone.
            kept = {k: v for k, v in document.items() if k not in ("_id", "contact", "user_id")}
            await store.insert_once(self._recipients, {**kept, "_id": document["appeal_id"]})
            await store.available(self._recipients.delete_one({"_id": document["_id"]}))
            moved += 1
        return moved

    async def _move_milestones(self, milestones: store.Collection) -> int:
        moved = 0
        async for document in _old_documents(milestones):
            # "received" is held by the profile's submitted event now.
            if document["kind"] != "received":
                await self.claim_milestone(
                    document["appeal_id"], document["kind"], document["about_event_id"]
                )
            moved += 1
        return moved

    async def _move_deliveries(self) -> int:
        by_appeal: dict[str, list[store.Document]] = defaultdict(list)
        async for document in _old_documents(self._outbox):
            by_appeal[document["appeal_id"]].append(document)
        for appeal_id, documents in by_appeal.items():
            documents.sort(key=lambda document: document["delivered_at"])
            for document in documents:
                about = document["about_event_id"]
                await store.insert_once(
                    self._outbox, {**document, "_id": outbox_id(appeal_id, about)}
                )
                await self.note_delivered(_delivery(document), await self._told_so_far(appeal_id))
                await store.available(self._outbox.delete_one({"_id": document["_id"]}))
        return sum(len(documents) for documents in by_appeal.values())


async def _old_documents(collection: store.Collection) -> AsyncIterator[store.Document]:
    """The documents of ``collection`` under an ObjectId (the shapes before id keys). One scan
    collects their ids, then they are read by _id in chunks: no cursor stays open on a
    collection the migration writes to."""
    ids = [
        document["_id"]
        for document in await store.available(
            collection.find({"_id": {"$type": "objectId"}}, {"_id": 1}).to_list()
        )
    ]
    for chunk in _chunks(ids, _MIGRATION_CHUNK):
        for document in await store.available(
            collection.find({"_id": {"$in": list(chunk)}}).to_list()
        ):
            yield document


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[start : start + size] for start in range(0, len(items), size))


def _recipient_document(recipient: Recipient) -> store.Document:
    # Never the user id or contact: they are read from intake for each send.
    return {
        "_id": recipient.appeal_id,
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
        appeal_id=document["_id"],
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
        "_id": outbox_id(delivery.appeal_id, delivery.about_event_id),
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
