"""The slot arithmetic of the paced budget, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ctct.pacing import moved, next_slot

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=0.25375)


def _at(*intervals: float) -> list[datetime]:
    return [T0 + INTERVAL * n for n in intervals]


def test_a_queueing_caller_gets_the_slot_one_interval_after_the_last() -> None:
    slot = next_slot(T0, _at(0, 1, 2), interval=INTERVAL, per_window=4, even=True)

    assert slot == T0 + INTERVAL * 3


def test_a_lone_caller_behind_schedule_goes_now_within_the_window() -> None:
    now = T0 + INTERVAL * 5
    recent = _at(0, 1, 2, 5)

    assert next_slot(now, recent, interval=INTERVAL, per_window=4, even=False) == now
    assert next_slot(now, recent, interval=INTERVAL, per_window=4, even=True) == now + INTERVAL


def test_no_five_slots_ever_fall_within_four_intervals() -> None:
    recent = _at(0, 0, 0, 0)

    slot = next_slot(T0, recent, interval=INTERVAL, per_window=4, even=False)

    assert slot == T0 + INTERVAL * 4


def test_a_moved_slot_replaces_the_planned_one_in_order() -> None:
    planned, later = _at(1, 2)
    went = planned + timedelta(seconds=0.3)

    assert moved([T0, planned, later], planned, went, 4) == [T0, later, went]
