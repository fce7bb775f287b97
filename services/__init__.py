"""The four appeals services; each is its own process (`python -m services.<name>.main`)."""
