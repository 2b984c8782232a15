"""The CTCT sandbox: an in-memory simulator of Constant Contact's partner API (see `app.py`)."""
