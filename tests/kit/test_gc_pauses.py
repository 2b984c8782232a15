"""Objects alive after start-up are left out of later garbage collections."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app.kit.gc_pauses import freeze_startup_heap


@pytest.fixture
def thawed_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process collects its own garbage again


def test_what_lives_after_start_up_is_frozen_and_start_up_garbage_is_collected_first(
    thawed_afterwards: None,
) -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node = self

    survivors = [Node() for _ in range(1_000)]
    # Garbage start-up left behind: cycles only a collection frees.
    garbage = [weakref.ref(Node()) for _ in range(500)]
    before = gc.get_freeze_count()

    frozen = freeze_startup_heap()

    assert frozen >= before + len(survivors)
    assert gc.get_freeze_count() == frozen
    assert all(ref() is None for ref in garbage)
