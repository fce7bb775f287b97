"""Kafka producer wrapper and consumer runner with the pipeline's delivery guarantees."""
