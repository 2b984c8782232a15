"""The slot arithmetic of the paced budget, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ctct.pacing import moved, next_slot, paced_after

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=0.25375)


def _at(*intervals: float) -> list[datetime]:
    return [T0 + INTERVAL * n for n in intervals]


def _slot(recent: list[datetime], paced: float | None, *, even: bool = True) -> datetime:
    return next_slot(
        T0,
        recent,
        paced_until=None if paced is None else T0 + INTERVAL * paced,
        interval=INTERVAL,
        per_window=4,
        even=even,
    )


def test_a_queueing_caller_gets_its_place_on_the_schedule() -> None:
    assert _slot(_at(0, 1, 2), paced=3) == T0 + INTERVAL * 3
    assert _slot([], paced=None) == T0


def test_a_queueing_caller_after_a_late_slot_keeps_the_schedule() -> None:
    a_third_late = _at(0, 1, 2, 3 + 1 / 3)
    two_thirds_late = _at(0, 1, 2, 3 + 2 / 3)

    assert _slot(a_third_late, paced=4) == T0 + INTERVAL * 4
    # Never closer than half an interval after the late one.
    assert _slot(two_thirds_late, paced=4) == T0 + INTERVAL * (3 + 2 / 3 + 0.5)


def test_the_schedule_keeps_its_pace_past_a_pushed_slot_by_up_to_one_interval() -> None:
    on_schedule = T0 + INTERVAL * 4

    pushed_a_little = paced_after(T0, on_schedule + INTERVAL / 6, on_schedule, interval=INTERVAL)
    pushed_far = paced_after(T0, on_schedule + INTERVAL * 1.5, on_schedule, interval=INTERVAL)

    assert pushed_a_little == on_schedule + INTERVAL
    assert pushed_far == on_schedule + INTERVAL * 1.5


def test_a_call_asked_for_after_a_pause_restarts_the_schedule_from_then() -> None:
    now = T0 + INTERVAL * 10

    assert paced_after(now, now, T0 + INTERVAL * 4, interval=INTERVAL) == now + INTERVAL


def test_a_lone_caller_behind_schedule_catches_up_within_the_window() -> None:
    now = T0 + INTERVAL * 5
    recent = _at(0, 1, 2, 5)

    def slot(even: bool) -> datetime:
        return next_slot(
            now,
            recent,
            paced_until=T0 + INTERVAL * 6,
            interval=INTERVAL,
            per_window=4,
            even=even,
        )

    # Half an interval after its last slot (no burst), within the window.
    assert slot(even=False) == now + INTERVAL / 2
    assert slot(even=True) == now + INTERVAL


def test_no_five_slots_ever_fall_within_four_intervals() -> None:
    assert _slot(_at(0, 0.5, 1, 1.5), paced=None, even=False) == T0 + INTERVAL * 4


def test_a_moved_slot_replaces_the_planned_one_in_order() -> None:
    planned, later = _at(1, 2)
    went = planned + timedelta(seconds=0.3)

    assert moved([T0, planned, later], planned, went, 4) == [T0, later, went]
