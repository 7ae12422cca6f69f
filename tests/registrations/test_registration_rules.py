"""The pure decisions of registering and dropping (app/registrations/rules.py), without a database.

The counters the rules return are checked against a plain model of a course: a
list of enrolled students and a reserve queue, changed one step at a time.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.registrations.errors import CourseFull, RegistrationClosed
from app.registrations.models import RegistrationStatus
from app.registrations.rules import SeatCounters, ensure_window_open, place_registration, vacate

ENROLLED, RESERVED = RegistrationStatus.ENROLLED, RegistrationStatus.RESERVED


def test_a_free_seat_enrolls():
    placement = place_registration(SeatCounters(max_capacity=2, reserve_limit=1, enrolled_count=1, reserved_count=0))
    assert (placement.status, placement.reserve_position) == (ENROLLED, None)
    assert (placement.enrolled_count, placement.reserved_count) == (2, 0)


def test_a_full_course_reserves_at_the_tail():
    placement = place_registration(SeatCounters(max_capacity=2, reserve_limit=3, enrolled_count=2, reserved_count=1))
    assert (placement.status, placement.reserve_position) == (RESERVED, 2)
    assert (placement.enrolled_count, placement.reserved_count) == (2, 2)


def test_a_full_course_with_a_full_reserve_list_refuses():
    with pytest.raises(CourseFull):
        place_registration(SeatCounters(max_capacity=2, reserve_limit=1, enrolled_count=2, reserved_count=1))


def test_a_course_without_seats_or_reserve_list_refuses():
    with pytest.raises(CourseFull):
        place_registration(SeatCounters(max_capacity=0, reserve_limit=0, enrolled_count=0, reserved_count=0))


def test_dropping_an_enrolled_seat_promotes_position_one():
    vacancy = vacate(
        SeatCounters(max_capacity=2, reserve_limit=3, enrolled_count=2, reserved_count=2),
        dropped_status=ENROLLED,
        dropped_position=None,
    )
    assert (vacancy.vacated_position, vacancy.enrolled_count, vacancy.reserved_count) == (0, 2, 1)


def test_dropping_an_enrolled_seat_with_nobody_waiting_frees_it():
    vacancy = vacate(
        SeatCounters(max_capacity=2, reserve_limit=3, enrolled_count=2, reserved_count=0),
        dropped_status=ENROLLED,
        dropped_position=None,
    )
    assert (vacancy.vacated_position, vacancy.enrolled_count, vacancy.reserved_count) == (None, 1, 0)


def test_dropping_a_reserved_place_closes_its_gap():
    vacancy = vacate(
        SeatCounters(max_capacity=2, reserve_limit=3, enrolled_count=2, reserved_count=3),
        dropped_status=RESERVED,
        dropped_position=2,
    )
    assert (vacancy.vacated_position, vacancy.enrolled_count, vacancy.reserved_count) == (2, 2, 2)


def test_a_reserved_drop_without_a_position_is_a_bug():
    with pytest.raises(ValueError, match="position"):
        vacate(
            SeatCounters(max_capacity=1, reserve_limit=1, enrolled_count=1, reserved_count=1),
            dropped_status=RESERVED,
            dropped_position=None,
        )


@pytest.mark.parametrize(
    ("offset", "is_open"),
    [
        (timedelta(seconds=-1), False),
        (timedelta(0), True),  # the start is inclusive
        (timedelta(hours=1), True),
        (timedelta(hours=2) - timedelta(microseconds=1), True),
        (timedelta(hours=2), False),  # the end is exclusive
    ],
)
def test_the_window_includes_its_start_and_excludes_its_end(offset, is_open):
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    end = start + timedelta(hours=2)
    if is_open:
        ensure_window_open(registration_start=start, registration_end=end, now=start + offset)
    else:
        with pytest.raises(RegistrationClosed):
            ensure_window_open(registration_start=start, registration_end=end, now=start + offset)


# ---- against a plain model of a course -----------------------------------------------------------

# A step: register a new student, or drop the student at some index of everyone registered.
steps = st.lists(st.one_of(st.just(("register", 0)), st.tuples(st.just("drop"), st.integers(0, 1000))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(0, 5), reserve_limit=st.integers(0, 5), steps=steps)
def test_counters_follow_a_model_course_through_any_sequence(capacity, reserve_limit, steps):
    enrolled: list[int] = []
    queue: list[int] = []  # reserve position n is queue[n - 1]
    seats = SeatCounters(capacity, reserve_limit, 0, 0)
    next_student = 0
    for action, index in steps:
        if action == "register":
            next_student += 1
            try:
                placement = place_registration(seats)
            except CourseFull:
                assert len(enrolled) == capacity
                assert len(queue) == reserve_limit
                continue
            if placement.status == ENROLLED:
                assert len(enrolled) < capacity
                enrolled.append(next_student)
            else:
                assert len(enrolled) == capacity, "nobody is reserved while a seat is free"
                queue.append(next_student)
                assert placement.reserve_position == len(queue)
            seats = SeatCounters(capacity, reserve_limit, placement.enrolled_count, placement.reserved_count)
        else:
            everyone = enrolled + queue
            if not everyone:
                continue
            student = everyone[index % len(everyone)]
            if student in enrolled:
                vacancy = vacate(seats, dropped_status=ENROLLED, dropped_position=None)
                enrolled.remove(student)
                if queue:
                    assert vacancy.vacated_position == 0
                    enrolled.append(queue.pop(0))
                else:
                    assert vacancy.vacated_position is None
            else:
                position = queue.index(student) + 1
                vacancy = vacate(seats, dropped_status=RESERVED, dropped_position=position)
                assert vacancy.vacated_position == position
                queue.remove(student)
            seats = SeatCounters(capacity, reserve_limit, vacancy.enrolled_count, vacancy.reserved_count)
        assert (seats.enrolled_count, seats.reserved_count) == (len(enrolled), len(queue))
        assert seats.enrolled_count <= capacity
        assert seats.reserved_count <= reserve_limit
