"""Membership: asking CTCT whether an account is ours (probes) and reconciling our list."""
