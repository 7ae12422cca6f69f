"""What a registrar's changes to a student can refuse."""

from app.core.errors import Conflict, DomainError


class StudentNotFound(DomainError):
    status_code = 404
    code = "STUDENT_NOT_FOUND"
    detail = "No student has this student number"


class StudentNumberTaken(Conflict):
    detail = "A student with this student number already exists"


class HoldNotFound(DomainError):
    status_code = 404
    code = "HOLD_NOT_FOUND"
    detail = "The student has no active hold with this id"
