"""The local development stack: Kafka and FerretDB without Docker, the services, code generation.

Used by the Makefile (`make run`, `make up`, `make down`, `make proto`) and by the test session,
which starts its own broker and store on free ports.
"""
