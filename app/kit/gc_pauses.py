"""Shorter garbage-collection pauses for the long-running processes (`serve`, `worker`).

A full (generation 2) collection traverses every tracked object. After start-up most of them
are modules, SQLAlchemy and pydantic metadata, routes and settings that live as long as the
process: in a worker that is 100-190 ms with the event loop stopped, long enough for a CTCT
call to miss its paced slot (bench/provision.py) and for access checks to stall. Frozen, they
are left out of every later collection; only what the process allocates afterwards is
traversed.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what start-up left behind, then exempt every surviving object from later
    collections. Returns how many objects are now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
