"""Path and query parameters shared by several routers.

Ids and page numbers are plain decimal digits: `13`, never `+13`, `1_3`, ` 13`
or `013`, which Python's int() would all read as 13. One spelling per value
means one catalogue cache entry per course (the cache keys on the validated
values) and no way to make many entries out of one course. An id is a
positive 32-bit integer, so an out-of-range id is a 422, never a database error.
"""

import re
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator

MAX_INT4 = 2**31 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


def decimal_digits(value: Any) -> Any:
    """Refuse any spelling of an integer but its plain decimal digits."""
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be written in plain decimal digits")
    return value


StrictInt = BeforeValidator(decimal_digits)

# The validator after Path(): placed before it, FastAPI would print the bounds
# into the OpenAPI schema as `ge`/`le` instead of `minimum`/`maximum`.
SemesterId = Annotated[int, Path(ge=1, le=MAX_INT4, description="Semester id"), StrictInt]
CourseId = Annotated[int, Path(ge=1, le=MAX_INT4, description="Course id"), StrictInt]

MAX_INT8 = 2**63 - 1
# No NUL: PostgreSQL text cannot hold one (psycopg2 refuses it before sending the query).
NO_NUL = r"^[^\x00]*$"
StudentNumber = Annotated[
    str, Path(min_length=1, max_length=32, pattern=NO_NUL, description="Student number", examples=["STU10000"])
]
HoldId = Annotated[int, Path(ge=1, le=MAX_INT8, description="Hold id"), StrictInt]
