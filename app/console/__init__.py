"""The operations console: server-rendered pages under /console for partner-operations people.

It calls the same services as the API (one door per domain) and records every decision under
the signed-in person's email.
"""
