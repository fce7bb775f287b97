"""The log itself: entries and their hashes, appending, the Merkle tree in the store, signed
checkpoints and verification of the whole log."""
