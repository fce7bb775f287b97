"""The strings of a protobuf message, read and rewritten in place (audit's payloads). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def strings(message: Message) -> Iterator[str]:
    """Every string field's value, nested messages and repeated fields included."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            yield from (value if field.is_repeated else [value])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                yield from strings(item)


def rewrite_strings(message: Message, rewrite: Callable[[str], str]) -> None:
    """Replace every string field's value by ``rewrite(value)``, in place."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [rewrite(item) for item in value]
            else:
                setattr(message, field.name, rewrite(value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                rewrite_strings(item, rewrite)
