from app.core.errors import Conflict, DomainError


class CourseNotFound(DomainError):
    status_code = 404
    code = "COURSE_NOT_FOUND"
    detail = "Course not found"


class CourseTaken(Conflict):
    detail = "A course with this code or name already exists in the semester"


class CourseHasRegistrations(DomainError):
    """Registered students' credits and time slots were judged on the old values."""

    status_code = 409
    code = "COURSE_HAS_REGISTRATIONS"
    detail = "Credits, meetings and prerequisites can change only while the course has no registrations"
