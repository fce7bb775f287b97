"""The pipeline's contracts and vocabulary: what every service agrees on, and nothing else.

``v1`` is generated from ``protos/`` (the events, commands and APIs on the wire). Beside it, by
hand: ``platforms`` (the platform registry, ``platforms.yaml``), ``vocabulary`` (names for the
contracts' enums, statuses after events), ``events`` (the lifecycle event registry), ``topics``
(every Kafka topic and the message it carries) and ``facts`` (what of an appeal may leave
intake). No I/O, no service code: the runtime plumbing lives in ``appeals_runtime``.
"""
