"""The audit: reconciling our whole store with CTCT's partner list, on demand and on a schedule."""
