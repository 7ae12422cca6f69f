"""The waiting room's pure decisions and its tokens, without a database."""

import json
import math
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest

from app.auth.errors import InvalidToken
from app.core.admission import GatePressure
from app.core.config import Settings
from app.core.security import JWT_ALGORITHM, create_access_token, decode_access_token
from app.waiting_room import tokens
from app.waiting_room.errors import AdmissionTokenInvalid
from app.waiting_room.rules import (
    COME_AT_TURN_SECONDS,
    MAX_ESTIMATE_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    PACE_GROWTH_MIN_PER_S,
    PACE_GROWTH_PER_S,
    PaceStep,
    RoomState,
    estimate,
    pace_step,
    room_is_on,
    soonest_turn_s,
)
from app.waiting_room.tokens import create_admission_token, decode_admission_token

NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
SECRET = "a-test-secret-of-at-least-thirty-two-bytes"


def on(enabled, *, opened_minutes_ago=1.0, closes_in=timedelta(days=1), default_minutes=5.0):
    return room_is_on(
        enabled=enabled,
        registration_start=NOW - timedelta(minutes=opened_minutes_ago),
        registration_end=NOW + closes_in,
        now=NOW,
        default_minutes=default_minutes,
    )


def test_the_default_rule_puts_the_room_on_for_the_first_minutes_of_the_window():
    assert on(None, opened_minutes_ago=0) is True
    assert on(None, opened_minutes_ago=4.9) is True
    assert on(None, opened_minutes_ago=5) is False
    assert on(None, opened_minutes_ago=1, default_minutes=0) is False


def test_the_registrars_switch_wins_over_the_default_rule():
    assert on(True, opened_minutes_ago=600) is True
    assert on(False, opened_minutes_ago=1) is False


def test_a_room_is_never_on_outside_the_registration_window():
    assert on(True, opened_minutes_ago=-1) is False  # not open yet
    assert on(True, closes_in=timedelta(0)) is False  # the end is exclusive
    assert on(None, opened_minutes_ago=-1) is False


def room(**values) -> RoomState:
    return RoomState(**{"semester_id": 1, "on": True, "admitted_through": 100, "rate_per_s": 10.0, **values})


def test_a_ticket_at_or_before_the_frontier_is_admitted_and_any_ticket_is_when_the_room_is_off():
    for ticket in (1, 100):
        assert estimate(ticket=ticket, room=room(), now=NOW, monotonic_now=0, fallback_rate_per_s=1).admitted
    off = estimate(ticket=10**9, room=room(on=False), now=NOW, monotonic_now=0, fallback_rate_per_s=1)
    assert (off.admitted, off.position, off.retry_after, off.estimated_admission_at) == (True, 0, None, NOW)


def test_a_ticket_behind_the_frontier_waits_its_position_divided_by_the_pace():
    guess = estimate(ticket=150, room=room(), now=NOW, monotonic_now=0, fallback_rate_per_s=1)
    assert (guess.admitted, guess.position, guess.retry_after) == (False, 50, 5)
    assert guess.estimated_admission_at == NOW + timedelta(seconds=5)


def test_the_estimate_counts_from_the_frontiers_last_move_and_the_age_of_the_state():
    state = room(frontier_offset_s=-0.5, read_at=100.0)
    guess = estimate(ticket=120, room=state, now=NOW, monotonic_now=101.0, fallback_rate_per_s=1)
    assert guess.estimated_admission_at == NOW + timedelta(seconds=0.5)  # 2 s of work, 1.5 s already gone
    assert guess.retry_after == 1  # never less than a second


def test_before_the_frontiers_first_move_the_estimate_takes_the_floor_and_retry_after_is_capped():
    guess = estimate(ticket=100_100, room=room(rate_per_s=0.0), now=NOW, monotonic_now=0, fallback_rate_per_s=20)
    assert guess.estimated_admission_at == NOW + timedelta(seconds=100_000 / 20)
    assert MAX_RETRY_AFTER_SECONDS * 2 / 3 < guess.retry_after <= MAX_RETRY_AFTER_SECONDS


def test_a_turn_near_comes_at_its_turn_and_one_further_off_comes_back_after_part_of_its_wait():
    near = estimate(ticket=300, room=room(), now=NOW, monotonic_now=0, fallback_rate_per_s=1)  # 20 s away
    assert near.retry_after == COME_AT_TURN_SECONDS - 10
    far = estimate(ticket=700, room=room(), now=NOW, monotonic_now=0, fallback_rate_per_s=1)  # 60 s away
    assert far.retry_after is not None and 60 * 0.5 <= far.retry_after <= 60 * 0.75


def test_clients_told_to_come_back_before_their_turn_are_spread_by_ticket_not_sent_back_together():
    # 3,000 places taken in the same second, all due long from now.
    answers = [
        estimate(ticket=ticket, room=room(rate_per_s=1.0), now=NOW, monotonic_now=0, fallback_rate_per_s=1).retry_after
        for ticket in range(1_000, 4_000)
    ]
    assert all(
        answer is not None and MAX_RETRY_AFTER_SECONDS * 2 / 3 < answer <= MAX_RETRY_AFTER_SECONDS for answer in answers
    )
    per_second = Counter(answers)
    assert len(per_second) >= MAX_RETRY_AFTER_SECONDS // 3 - 1
    assert max(per_second.values()) <= 2 * len(answers) / len(per_second)


@pytest.mark.parametrize(("position", "rate"), [(100, 10.0), (2_000, 21.0), (1_800, 60.0), (50_000, 45.0)])
def test_the_soonest_turn_is_when_the_frontier_gets_there_with_the_pace_growing_as_fast_as_it_can(position, rate):
    step, elapsed, passed, pace = 0.001, 0.0, 0.0, rate
    while passed < position:  # the adaptive pace's fastest growth, step by step
        passed += pace * step
        pace += max(PACE_GROWTH_MIN_PER_S, PACE_GROWTH_PER_S * pace) * step
        elapsed += step
    assert soonest_turn_s(position, rate) == pytest.approx(elapsed, rel=0.01)
    assert soonest_turn_s(position, rate) < position / rate


def test_with_an_adaptive_pace_a_client_comes_back_at_the_soonest_its_turn_can_come():
    adaptive = room(rate_per_s=60.0, adaptive=True)
    guess = estimate(ticket=100 + 1_800, room=adaptive, now=NOW, monotonic_now=0, fallback_rate_per_s=1)
    assert guess.estimated_admission_at == NOW + timedelta(seconds=30)  # the forecast: today's pace
    assert guess.retry_after == math.ceil(soonest_turn_s(1_800, 60.0)) == 24  # if the pace grows all along
    fixed = estimate(ticket=100 + 1_800, room=room(rate_per_s=60.0), now=NOW, monotonic_now=0, fallback_rate_per_s=1)
    assert fixed.retry_after == 30  # the registrar's pace never grows
    # Further off: after part of the wait, as with any pace, but never after the soonest turn.
    growing = room(rate_per_s=40.0, adaptive=True)
    far = estimate(ticket=100 + 4_000, room=growing, now=NOW, monotonic_now=0, fallback_rate_per_s=1)  # 100 s away
    soonest = soonest_turn_s(4_000, 40.0)
    assert 50 < soonest < 60
    assert far.retry_after is not None and 100 * 0.5 <= far.retry_after <= math.ceil(soonest)


def test_a_registrars_pace_below_the_floor_is_the_pace_and_no_estimate_runs_off_the_calendar():
    slow = estimate(ticket=110, room=room(rate_per_s=0.5), now=NOW, monotonic_now=0, fallback_rate_per_s=20)
    assert slow.estimated_admission_at == NOW + timedelta(seconds=20)
    crawl = estimate(ticket=10**15, room=room(rate_per_s=0.01), now=NOW, monotonic_now=0, fallback_rate_per_s=20)
    assert crawl.estimated_admission_at == NOW + timedelta(seconds=MAX_ESTIMATE_SECONDS)


# ---- tokens ----------------------------------------------------------------------------------


def admission(**overrides) -> str:
    values = {
        "student_id": uuid.UUID(int=7),
        "semester_id": 3,
        "ticket": 42,
        "secret_key": SECRET,
        "now": datetime.now(UTC),
        "lifetime": timedelta(minutes=5),
    }
    return create_admission_token(**{**values, **overrides})


def test_an_admission_token_says_whose_place_in_which_semester():
    claims = decode_admission_token(admission(), secret_key=SECRET)
    assert (claims.student_id, claims.semester_id, claims.ticket) == (uuid.UUID(int=7), 3, 42)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(admission(secret_key="another-secret-of-at-least-thirty-two-bytes"), id="forged signature"),
        pytest.param(admission(now=datetime.now(UTC) - timedelta(hours=1)), id="expired"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param(
            jwt.encode(
                {
                    "sub": str(uuid.UUID(int=7)),
                    "kind": "student",
                    "aud": "waiting-room",
                    "sem": 3,
                    "tkt": 1,
                    "iat": datetime.now(UTC),
                    "exp": datetime.now(UTC) + timedelta(minutes=5),
                },
                SECRET,
                algorithm=JWT_ALGORITHM,
            ),
            id="another kind",
        ),
        pytest.param(
            jwt.encode(
                {
                    "sub": str(uuid.UUID(int=7)),
                    "kind": "admission",
                    "aud": "waiting-room",
                    "sem": 3,
                    "tkt": "1",
                    "iat": datetime.now(UTC),
                    "exp": datetime.now(UTC) + timedelta(minutes=5),
                },
                SECRET,
                algorithm=JWT_ALGORITHM,
            ),
            id="a ticket that is not a number",
        ),
        pytest.param(jwt.encode({"sub": "x", "kind": "admission"}, SECRET, algorithm="HS512"), id="another algorithm"),
    ],
)
def test_anything_but_our_admission_token_is_refused(token):
    with pytest.raises(AdmissionTokenInvalid):
        decode_admission_token(token, secret_key=SECRET)


def test_an_access_token_is_no_admission_token_and_an_admission_token_no_access_token():
    settings = Settings(environment="test", secret_key=SECRET, database_url="postgresql://nobody@/never")
    access = create_access_token(student_id=uuid.UUID(int=7), student_number="S1", settings=settings)
    with pytest.raises(AdmissionTokenInvalid):
        decode_admission_token(access, secret_key=SECRET)
    with pytest.raises(InvalidToken):
        decode_access_token(admission(), settings=settings)


def test_a_remembered_admission_token_is_refused_once_it_expires(monkeypatch):
    token = admission(lifetime=timedelta(minutes=5))
    assert decode_admission_token(token, secret_key=SECRET).ticket == 42  # verified, and remembered
    later = time.time() + 301
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(AdmissionTokenInvalid):
        decode_admission_token(token, secret_key=SECRET)


def test_an_admission_token_is_remembered_only_for_the_key_that_signed_it():
    token = admission()
    decode_admission_token(token, secret_key=SECRET)
    with pytest.raises(AdmissionTokenInvalid):
        decode_admission_token(token, secret_key="another-secret-of-at-least-thirty-two-bytes")


def test_a_tampered_ticket_breaks_the_signature():
    token = admission()
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_payload = jwt.utils.base64url_encode(json.dumps({**claims, "tkt": 1}).encode()).decode()
    with pytest.raises(AdmissionTokenInvalid):
        decode_admission_token(f"{header}.{forged_payload}.{signature}", secret_key=SECRET)


# ---- the adaptive pace ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pressure", "step"),
    [
        (GatePressure(admitted=0, mean_wait_s=0.0, refused=0), PaceStep.GROW),  # idle
        (GatePressure(admitted=500, mean_wait_s=0.005, refused=0), PaceStep.GROW),  # straight through
        (GatePressure(admitted=500, mean_wait_s=0.05, refused=0), PaceStep.HOLD),  # queueing a little
        (GatePressure(admitted=500, mean_wait_s=0.3, refused=0), PaceStep.CUT),  # queueing long
        (GatePressure(admitted=500, mean_wait_s=0.0, refused=5), PaceStep.GROW),  # 1% refused: one hot course
        (GatePressure(admitted=500, mean_wait_s=0.0, refused=50), PaceStep.CUT),  # 9% refused
        (GatePressure(admitted=9, mean_wait_s=0.0, refused=0, oldest_wait_s=0.5), PaceStep.CUT),  # stuck
        (GatePressure(admitted=500, mean_wait_s=0.0, refused=0, loop_lag_s=0.05), PaceStep.HOLD),  # loop late
        (GatePressure(admitted=500, mean_wait_s=0.0, refused=0, loop_lag_s=0.4), PaceStep.CUT),  # CPU-bound
        (GatePressure(admitted=5, mean_wait_s=0.0, refused=0, accept_wait_s=0.01), PaceStep.GROW),  # door free
        (GatePressure(admitted=5, mean_wait_s=0.0, refused=0, accept_wait_s=2.0), PaceStep.HOLD),  # door busy
        (GatePressure(admitted=5, mean_wait_s=0.0, refused=0, place_wait_s=0.01), PaceStep.GROW),  # places quick
        (GatePressure(admitted=5, mean_wait_s=0.0, refused=0, place_wait_s=3.0), PaceStep.HOLD),  # places slow
    ],
)
def test_the_pace_grows_while_writes_go_straight_through_and_is_cut_when_they_queue(pressure, step):
    assert pace_step(pressure) == step
