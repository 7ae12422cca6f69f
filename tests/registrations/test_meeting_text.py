"""The text form of meetings (app/registrations/meeting_text.py), as operators write it."""

import pytest

from app.registrations.meeting_text import meetings_text, parse_meetings_text
from app.registrations.rules import schedule_text


def test_parses_days_and_clocks_and_writes_them_back():
    meetings = parse_meetings_text("mon 9:00-10:30; WED 09:00 - 10:30;")
    assert meetings == [
        {"day": "MON", "start": "09:00", "end": "10:30"},
        {"day": "WED", "start": "09:00", "end": "10:30"},
    ]
    assert meetings_text(meetings) == "MON 09:00-10:30;WED 09:00-10:30"
    assert parse_meetings_text(meetings_text(meetings)) == meetings
    assert schedule_text(meetings) == "Mon 09:00-10:30, Wed 09:00-10:30"


def test_empty_text_is_no_meetings():
    assert parse_meetings_text("") == []
    assert parse_meetings_text(" ; ") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("MON 10:30-09:00", "ends before it starts"),
        ("MON 09:00-09:00", "ends before it starts"),
        ("FUN 09:00-10:00", "is not one of MON"),
        ("MON 24:00-25:00", "not a time of day"),
        ("MON 09:60-10:00", "not a time of day"),
        ("Monday 9-10", "is not like 'MON 09:00-10:30'"),
        ("MON 09:00-10:00;TUE", "'TUE' is not like"),
    ],
)
def test_refuses_what_the_rules_could_not_use(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_meetings_text(text)
