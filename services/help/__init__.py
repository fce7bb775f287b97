"""Live help for people locked out of their accounts: a way in without the account."""
