from datetime import datetime

from pydantic import BaseModel, ConfigDict


class SemesterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    registration_start: datetime
    registration_end: datetime
    is_registration_open: bool
