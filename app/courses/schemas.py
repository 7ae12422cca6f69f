from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from app.core.params import NO_NUL

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


MAX_MEETINGS = 10  # their `schedule` text stays within its 200 characters
MAX_SEATS = 100_000
CourseCode = Annotated[str, Field(min_length=1, max_length=20, pattern=NO_NUL, examples=["CS101"])]


class CourseCreate(BaseModel):
    code: CourseCode = Field(description="Unique in the semester")
    course_name: str = Field(min_length=1, max_length=200, pattern=NO_NUL, description="Unique in the semester")
    professor: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    credits: StrictInt = Field(default=3, ge=0, le=12)
    meetings: list[Meeting] = Field(default=[], max_length=MAX_MEETINGS)
    prerequisites: list[CourseCode] = Field(
        default=[], max_length=20, description="Codes of the courses a student must have completed"
    )
    max_capacity: StrictInt = Field(ge=0, le=MAX_SEATS)
    reserve_limit: StrictInt = Field(default=10, ge=0, le=MAX_SEATS)
    schedule: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Text shown to old clients; derived from `meetings` when there are any, else this",
    )


class CourseUpdate(BaseModel):
    """Only the fields sent (and not null) change. `max_capacity` and `reserve_limit`
    never remove anybody (a raise promotes the reserve list's head at once);
    `credits`, `meetings` and `prerequisites` change only while nobody is registered."""

    code: CourseCode | None = None
    course_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    professor: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    credits: StrictInt | None = Field(default=None, ge=0, le=12)
    meetings: list[Meeting] | None = Field(default=None, max_length=MAX_MEETINGS)
    prerequisites: list[CourseCode] | None = Field(default=None, max_length=20)
    max_capacity: StrictInt | None = Field(default=None, ge=0, le=MAX_SEATS)
    reserve_limit: StrictInt | None = Field(default=None, ge=0, le=MAX_SEATS)
    schedule: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)


class CourseCancelRead(BaseModel):
    course_id: int
    ended_registrations: int = Field(description="Registrations ended by this call (0 when called again)")
