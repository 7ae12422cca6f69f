"""Meetings as operators write them: `MON 09:00-10:30;WED 09:00-10:30`.

The text form of a course's `meetings` (a list of `{"day", "start", "end"}`), used by
the CSV import and export and the demo catalogue. `parse_meetings_text` checks
what the registration rules rely on (app/registrations/rules.py): a known day,
HH:MM clocks, start before end; it raises ValueError with the reason.
"""

import re
from collections.abc import Iterable, Mapping

from app.registrations.rules import DAYS

_MEETING = re.compile(r"^(?P<day>[A-Za-z]{3})\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")


def _clock(value: str, *, field: str) -> str:
    hours, minutes = (int(part) for part in value.split(":"))
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError(f"{field} time {value!r} is not a time of day (00:00-23:59)")
    return f"{hours:02d}:{minutes:02d}"


def parse_meetings_text(text: str) -> list[dict[str, str]]:
    """`MON 09:00-10:30;WED 09:00-10:30` -> [{"day": "MON", "start": "09:00", "end": "10:30"}, ...].

    Empty text is no meetings. Days are case-insensitive; clocks may drop a leading zero.
    """
    meetings: list[dict[str, str]] = []
    for part in (piece.strip() for piece in text.split(";")):
        if not part:
            continue
        match = _MEETING.match(part)
        if match is None:
            raise ValueError(f"meeting {part!r} is not like 'MON 09:00-10:30'")
        day = match["day"].upper()
        if day not in DAYS:
            raise ValueError(f"meeting {part!r}: day {match['day']!r} is not one of {', '.join(DAYS)}")
        start, end = _clock(match["start"], field="start"), _clock(match["end"], field="end")
        if start >= end:
            raise ValueError(f"meeting {part!r} ends before it starts")
        meetings.append({"day": day, "start": start, "end": end})
    return meetings


def meetings_text(meetings: Iterable[Mapping[str, str]]) -> str:
    """The inverse of parse_meetings_text."""
    return ";".join(f"{m['day']} {m['start']}-{m['end']}" for m in meetings)
