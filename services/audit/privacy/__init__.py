"""Personal data in the log: pseudonyms, sealing with per-person data keys (crypto-shredding),
the person keys' store, and events in the layout from before intake kept personal data."""
