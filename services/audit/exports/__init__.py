"""What the log is read for beyond trails: DSA statements of reasons (Art. 24(5)), Art. 15
complaint-handling figures and reconciliation with intake's acknowledgements."""
