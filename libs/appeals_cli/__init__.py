"""The `appeals` command: submit and look up appeals, review cases, mint dev tokens, run a demo."""
