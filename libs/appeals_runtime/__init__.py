"""Runtime code every appeals service stands on: settings, topics, Kafka, store, telemetry, logs."""
