"""Membership: asking CTCT whether an account is ours (probes), and the routes that probe."""
