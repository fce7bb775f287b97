"""Which cases this routing instance looks after: those in the partitions its consumer owns.

An appeal's events are keyed by its id, so the partition an appeal's submitted event arrives on
is the producer's choice for that key (Kafka's default partitioner: murmur2 of the key). The
instance whose consumer owns that partition runs the case's timers and catches it up after a
take-over; the desk serves every case from every instance regardless.
"""

from __future__ import annotations

from typing import Protocol

from aiokafka.partitioner import murmur2

# partitions() when no consumer is followed: the instance looks after every case.
EVERY_PARTITION: frozenset[int] = frozenset({-1})


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner sends ``key`` to."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class Assigned(Protocol):
    """What ownership follows: a group member's assignment (a ``ConsumerRunner``)."""

    def assignment_of(self, topic: str) -> tuple[frozenset[int], int]: ...


class Ownership:
    def __init__(self) -> None:
        self._runner: Assigned | None = None
        self._topic = ""

    def follow(self, runner: Assigned, topic: str) -> None:
        """Own what ``runner`` is assigned of ``topic`` (the topic cases arrive on)."""
        self._runner, self._topic = runner, topic

    @property
    def topic(self) -> str:
        """The topic whose partitions decide ownership ("" while no consumer is followed)."""
        return self._topic

    def _assignment(self) -> tuple[frozenset[int], int] | None:
        if self._runner is None:
            return None
        return self._runner.assignment_of(self._topic)

    def partitions(self) -> frozenset[int]:
        """The partitions owned now; ``EVERY_PARTITION`` when no consumer is followed."""
        assignment = self._assignment()
        return EVERY_PARTITION if assignment is None else assignment[0]

    def partition_of(self, appeal_id: str) -> int:
        assignment = self._assignment()
        if assignment is None or assignment[1] == 0:
            return -1
        return partition_for(appeal_id, assignment[1])

    def owns(self, appeal_id: str) -> bool:
        assignment = self._assignment()
        if assignment is None:
            return True
        owned, count = assignment
        return count > 0 and partition_for(appeal_id, count) in owned
