"""The frontier in PostgreSQL: its pace (fixed or adaptive), its order, its guard."""

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.core.admission import GatePressure
from app.waiting_room import service
from app.waiting_room.places import PlaceBatches
from app.waiting_room.rules import PACE_CUT, PACE_GROWTH_MIN_PER_S, PACE_GROWTH_PER_S, PaceStep, RoomState
from app.waiting_room.state import WaitingRooms


@pytest.fixture
def room_settings(settings):
    return settings.model_copy(
        update={
            "waiting_room_tick_seconds": 0.2,
            "waiting_room_initial_rate_per_s": 10.0,
            "waiting_room_min_rate_per_s": 1.0,
            "waiting_room_max_rate_per_s": 30.0,
            "waiting_room_cut_cooldown_seconds": 0.5,
        }
    )


def open_room(engine, semester, *, rate: float | None, idle_seconds: float = 0.0) -> None:
    """The room's row, switched on, its frontier last moved `idle_seconds` ago."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO waiting_rooms (semester_id, enabled, fixed_rate_per_s, frontier_at)"
                " VALUES (:s, true, :rate, now() - make_interval(secs => :idle))"
            ),
            {"s": semester.id, "rate": rate, "idle": idle_seconds},
        )


def places(engine, settings, semester, students) -> list[int]:
    """Each student's place, in this order; their tickets."""
    room = RoomState(semester.id, on=True)
    batches = PlaceBatches(engine)

    async def one_after_another() -> None:
        for student in students:
            await service.take_place(
                batches, student_id=student.id, room=room, now=datetime.now(UTC), settings=settings
            )

    asyncio.run(one_after_another())
    return [_ticket(engine, semester, student) for student in students]


def _ticket(engine, semester, student) -> int:
    with engine.connect() as connection:
        ticket: int = connection.scalar(
            text("SELECT queue_ticket FROM student_terms WHERE semester_id = :s AND student_id = :st"),
            {"s": semester.id, "st": student.id},
        )
    return ticket


def load(engine, settings, semester, *, step: PaceStep = PaceStep.HOLD) -> RoomState:
    state = service.load_room(engine, semester_id=semester.id, now=datetime.now(UTC), settings=settings, pace_step=step)
    assert state is not None and state.on
    return state


def test_the_adaptive_pace_starts_at_the_initial_rate(engine, room_settings, factory):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(30))
    open_room(engine, semester, rate=None, idle_seconds=1)
    state = load(engine, room_settings, semester)
    assert state.rate_per_s == pytest.approx(10.0)
    assert state.admitted_through > 0
    assert state.adaptive


def test_the_adaptive_pace_grows_by_a_share_of_itself_per_second_while_students_wait(engine, room_settings, factory):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(100))
    open_room(engine, semester, rate=None, idle_seconds=1)
    rates = [load(engine, room_settings, semester, step=PaceStep.GROW).rate_per_s]
    assert rates[0] == pytest.approx(10.0 + max(PACE_GROWTH_MIN_PER_S, PACE_GROWTH_PER_S * 10.0), rel=0.05)
    for _ in range(3):
        time.sleep(room_settings.waiting_room_tick_seconds + 0.05)
        rates.append(load(engine, room_settings, semester, step=PaceStep.GROW).rate_per_s)
    assert rates == sorted(rates) and rates[-1] > rates[0]


def test_the_adaptive_pace_never_grows_while_fewer_wait_than_it_would_admit(engine, room_settings, factory):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(3))
    open_room(engine, semester, rate=None, idle_seconds=1)
    state = load(engine, room_settings, semester, step=PaceStep.GROW)
    assert state.rate_per_s == pytest.approx(10.0)  # everybody admitted; the pace as it was


def test_a_cut_takes_a_fifth_off_and_the_next_waits_for_the_cooldown(engine, room_settings, factory):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(100))
    open_room(engine, semester, rate=None, idle_seconds=1)
    cut = load(engine, room_settings, semester, step=PaceStep.CUT)
    assert cut.rate_per_s == pytest.approx(10.0 * PACE_CUT) and cut.pace_cut_from == pytest.approx(10.0)
    time.sleep(room_settings.waiting_room_tick_seconds + 0.05)
    # Still cooling down: the students admitted before the cut have not written yet.
    cooling = load(engine, room_settings, semester, step=PaceStep.CUT)
    assert cooling.rate_per_s == pytest.approx(10.0 * PACE_CUT) and cooling.pace_cut_from is None
    time.sleep(room_settings.waiting_room_cut_cooldown_seconds)
    cut_twice = load(engine, room_settings, semester, step=PaceStep.CUT).rate_per_s
    assert cut_twice == pytest.approx(10.0 * PACE_CUT**2)


def test_the_adaptive_pace_stays_within_its_bounds(engine, room_settings, factory):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(100))
    open_room(engine, semester, rate=None, idle_seconds=1)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE waiting_rooms SET rate_per_s = 29.9 WHERE semester_id = :s"), {"s": semester.id}
        )
    assert load(engine, room_settings, semester, step=PaceStep.GROW).rate_per_s == pytest.approx(30.0)  # the max
    with engine.begin() as connection:
        connection.execute(text("UPDATE waiting_rooms SET rate_per_s = 1.1 WHERE semester_id = :s"), {"s": semester.id})
    time.sleep(room_settings.waiting_room_tick_seconds + 0.05)
    assert load(engine, room_settings, semester, step=PaceStep.CUT).rate_per_s == pytest.approx(1.0)  # the min


def test_the_frontier_admits_exactly_the_pace_times_the_time_in_ticket_order(engine, room_settings, factory):
    semester = factory.semester()
    students = factory.students(10)
    tickets = places(engine, room_settings, semester, students)
    open_room(engine, semester, rate=4, idle_seconds=1.1)  # due: 4 places
    state = load(engine, room_settings, semester)
    assert state.admitted_through == sorted(tickets)[3]
    assert not state.adaptive  # the registrar's pace: estimates never count on it growing
    # The remainder carries over: the frontier's clock moved by exactly 4 / 4 s, not to now.
    assert -0.3 < state.frontier_offset_s < 0


def test_the_frontier_moves_at_most_once_per_tick(engine, room_settings, factory):
    semester = factory.semester()
    tickets = places(engine, room_settings, semester, factory.students(10))
    open_room(engine, semester, rate=1000, idle_seconds=0)  # not due yet
    assert load(engine, room_settings, semester).admitted_through == 0
    time.sleep(room_settings.waiting_room_tick_seconds + 0.05)
    assert load(engine, room_settings, semester).admitted_through == max(tickets)


def test_other_rooms_places_do_not_slow_a_room_down(engine, room_settings, factory):
    semester, other = factory.semester(), factory.semester()
    students = factory.students(6)
    mine: list[int] = []
    for student in students:  # interleaved with another semester's places
        mine += places(engine, room_settings, semester, [student])
        places(engine, room_settings, other, factory.students(1))
    open_room(engine, semester, rate=3, idle_seconds=1.05)  # due: 3 of this room's places
    assert load(engine, room_settings, semester).admitted_through == sorted(mine)[2]


def test_no_credit_piles_up_while_nobody_waits(engine, room_settings, factory):
    semester = factory.semester()
    open_room(engine, semester, rate=2, idle_seconds=3600)  # an hour idle, nobody waiting
    state = load(engine, room_settings, semester)
    assert state.admitted_through == 0 and state.frontier_offset_s > -0.1  # its clock restarted
    tickets = places(engine, room_settings, semester, factory.students(20))
    time.sleep(0.6)
    # A burst after the idle hour is let in at the pace (about 1 place in 0.6 s), not all at once.
    assert load(engine, room_settings, semester).admitted_through < min(tickets) + 3


def test_a_worker_that_cuts_the_pace_says_why_in_one_log_line(engine, room_settings, factory, caplog):
    semester = factory.semester()
    places(engine, room_settings, semester, factory.students(100))
    open_room(engine, semester, rate=None, idle_seconds=1)
    pressure = GatePressure(admitted=40, mean_wait_s=0.0, refused=0, loop_lag_s=0.0)
    rooms = WaitingRooms(engine=engine, settings=room_settings, pressure=lambda: pressure)

    async def read_twice() -> tuple[RoomState | None, RoomState | None]:
        first = await rooms.room(semester.id)  # at ease: the initial pace
        await asyncio.sleep(room_settings.waiting_room_tick_seconds + 0.05)
        return first, await rooms.room(semester.id)

    calm, _ = asyncio.run(read_twice())
    assert calm is not None and not [r for r in caplog.records if "pace cut" in r.getMessage()]
    pressure = GatePressure(admitted=40, mean_wait_s=0.0, refused=0, loop_lag_s=0.3)  # the loop runs 300 ms late
    time.sleep(room_settings.waiting_room_tick_seconds + 0.05)
    with caplog.at_level(logging.INFO, logger="app.waiting_room.state"):
        asyncio.run(rooms.room(semester.id))
    (line,) = [r.getMessage() for r in caplog.records if "pace cut" in r.getMessage()]
    assert f"semester {semester.id}: pace cut from " in line and "event loop 300 ms late" in line
