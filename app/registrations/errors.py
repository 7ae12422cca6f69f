"""What registering and dropping can refuse."""

from app.core.errors import DomainError


class NotRegistered(DomainError):
    status_code = 404
    code = "NOT_REGISTERED"
    detail = "You are not registered for this course"


class AlreadyRegistered(DomainError):
    status_code = 409
    code = "ALREADY_REGISTERED"
    detail = "You are already registered for this course"


class CourseFull(DomainError):
    status_code = 409
    code = "COURSE_FULL"
    detail = "The course and its reserve list are full"


class RegistrationClosed(DomainError):
    status_code = 409
    code = "REGISTRATION_CLOSED"
    detail = "Registration is not open for this semester"
