from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.fields import Timestamp
from app.core.params import NO_NUL


class SemesterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    registration_start: datetime
    registration_end: datetime
    is_registration_open: bool


class SemesterCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL, examples=["Fall 2027"])
    registration_start: Timestamp = Field(description="Registration opens (inclusive)")
    registration_end: Timestamp = Field(description="Registration closes (exclusive); after the start")

    @model_validator(mode="after")
    def _window_in_order(self) -> "SemesterCreate":
        if self.registration_end <= self.registration_start:
            raise ValueError("registration_end must be after registration_start")
        return self


class SemesterUpdate(BaseModel):
    """Only the fields sent (and not null) change; the window, combined with the stored
    one, must stay in order."""

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)
    registration_start: Timestamp | None = None
    registration_end: Timestamp | None = None

    @model_validator(mode="after")
    def _window_in_order(self) -> "SemesterUpdate":
        start, end = self.registration_start, self.registration_end
        if start is not None and end is not None and end <= start:
            raise ValueError("registration_end must be after registration_start")
        return self
