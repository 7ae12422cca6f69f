from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Meeting(BaseModel):
    """One weekly meeting; `start` < `end`, both "HH:MM" (24 h)."""

    day: Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    start: str = Field(pattern=_CLOCK, examples=["09:00"])
    end: str = Field(pattern=_CLOCK, examples=["10:30"])

    @model_validator(mode="after")
    def _starts_before_it_ends(self) -> "Meeting":
        if self.start >= self.end:
            raise ValueError("a meeting starts before it ends")
        return self


class CourseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    semester_id: int
    course_name: str
    professor: str
    schedule: str
    max_capacity: int
    reserve_limit: int
    enrolled_count: int
    reserved_count: int
    available_seats: int
    code: str
    credits: int
    meetings: list[Meeting]
    prerequisites: list[str] = Field(description="Codes of the courses a student must have completed")
    is_cancelled: bool
