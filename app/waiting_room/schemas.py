from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StrictBool


def _a_json_number(value: Any) -> Any:
    """A JSON number only: pydantic would also read "5" or true as a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


# From one student every 100 s to a million a second.
Pace = Annotated[float, BeforeValidator(_a_json_number), Field(ge=0.01, le=1_000_000)]


class QueuePlaceRead(BaseModel):
    """A student's place in a semester's waiting room."""

    semester_id: int
    position: int = Field(
        description="Places up to the admission frontier, this one included; 0 once admitted. An upper bound "
        "when several semesters' rooms fill at once (their places are numbered together)."
    )
    admitted: bool = Field(description="True: register, drop and swap in this semester with the admission token")
    estimated_admission_at: datetime = Field(description="When the place should be admitted (now, once it is)")
    admission_token: str = Field(
        description="Send it as X-Admission-Token with register, drop and swap in this semester; it stays the "
        "same place, and becomes good once the place is admitted"
    )


class WaitingRoomUpdate(BaseModel):
    enabled: StrictBool | None = Field(
        description="true: on while registration is open; false: off; null: the default (on for the first "
        "WAITING_ROOM_DEFAULT_MINUTES of the registration window)"
    )
    rate_per_s: Pace | None = Field(
        default=None,
        description="Students admitted per second; null: adaptive (the pace at which students are being served)",
    )


class WaitingRoomRead(BaseModel):
    semester_id: int
    enabled: StrictBool | None = Field(description="The registrar's switch; null: the default rule")
    active: bool = Field(description="Whether the room is on now")
    fixed_rate_per_s: float | None = Field(description="The registrar's pace; null: adaptive")
    rate_per_s: float = Field(description="The pace the frontier last moved at, students per second")
    admitted_through: int = Field(description="Every ticket up to this one is admitted")
    places: int = Field(description="Places given out in this semester")
    waiting: int = Field(description="Places not admitted yet (0 while the room is off)")
