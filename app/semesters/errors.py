from app.core.errors import DomainError


class SemesterNotFound(DomainError):
    status_code = 404
    code = "SEMESTER_NOT_FOUND"
    detail = "Semester not found"
