"""What registering and dropping can refuse."""

from datetime import datetime

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


class CourseCancelled(DomainError):
    status_code = 409
    code = "COURSE_CANCELLED"
    detail = "This course was cancelled"


class AppointmentNotStarted(DomainError):
    status_code = 409
    code = "APPOINTMENT_NOT_STARTED"
    detail = "Your registration appointment has not started yet"

    def __init__(self, opens_at: datetime) -> None:
        super().__init__(opens_at=opens_at)


class RegistrationHold(DomainError):
    status_code = 403
    code = "REGISTRATION_HOLD"
    detail = "A hold on your record blocks registering"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons=reasons)


class PrerequisiteMissing(DomainError):
    status_code = 409
    code = "PREREQUISITE_MISSING"
    detail = "You have not completed this course's prerequisites"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(missing=missing)


class ScheduleConflict(DomainError):
    status_code = 409
    code = "SCHEDULE_CONFLICT"
    detail = "This course meets at the same time as one you are registered for"

    def __init__(self, conflicts_with: int) -> None:
        super().__init__(conflicts_with=conflicts_with)


class CreditLimitExceeded(DomainError):
    status_code = 409
    code = "CREDIT_LIMIT_EXCEEDED"
    detail = "This course would take you over your credit limit"

    def __init__(self, *, credits: int, course_credits: int, max_credits: int) -> None:
        super().__init__(credits=credits, course_credits=course_credits, max_credits=max_credits)


class SwapNeedsSeat(DomainError):
    status_code = 409
    code = "SWAP_NEEDS_SEAT"
    detail = "The course has no free seat: a swap only ever trades a course for a seat, never for a reserve place"


class SwapSameCourse(DomainError):
    status_code = 422
    code = "SWAP_SAME_COURSE"
    detail = "A course cannot be swapped for itself"


class CapacityBelowEnrolled(DomainError):
    status_code = 409
    code = "CAPACITY_BELOW_ENROLLED"
    detail = "The new capacity is below the number of enrolled students; nobody is removed by an edit"


class ReserveBelowReserved(DomainError):
    status_code = 409
    code = "RESERVE_BELOW_RESERVED"
    detail = "The new reserve limit is below the number of reserved students; nobody is removed by an edit"
