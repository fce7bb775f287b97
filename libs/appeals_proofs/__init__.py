"""Checking the audit log's proofs with nothing but its verifier key: what a third party runs.

RFC 9162 Merkle tree hashing and inclusion/consistency proofs (``merkle``, ``proofs``), C2SP
signed notes and tlog checkpoints with Ed25519 (``signed_note``, ``checkpoints``) and the
self-contained proof bundles the audit service hands out (``bundles``). Pure: no store, no
network, no service code; the audit service builds its log on it, and ``appeals audit
check-proof`` checks a bundle with it alone.
"""
