"""The pipeline's contracts and vocabulary: what every service agrees on, and nothing else.

``v1`` is generated from ``protos/`` (the events, commands and APIs on the wire). Beside it, by
hand: ``platforms`` (the platform registry, ``platforms.yaml``), ``vocabulary`` (names for the
contracts' enums, statuses after events), ``events`` (the lifecycle event registry), ``topics``
(every Kafka topic and the message it carries), ``facts`` (what of an appeal may leave
intake) and ``attachments`` (what a person may attach, on an appeal or in a live-help chat). No
I/O, no service code: the runtime plumbing lives in ``appeals_runtime``.
"""
