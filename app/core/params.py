"""Path parameters shared by several routers: ids are positive 32-bit integers,
so a malformed or out-of-range id is a 422, never a database error."""

from typing import Annotated

from fastapi import Path

_MAX_INT4 = 2**31 - 1

SemesterId = Annotated[int, Path(ge=1, le=_MAX_INT4, description="Semester id")]
CourseId = Annotated[int, Path(ge=1, le=_MAX_INT4, description="Course id")]
