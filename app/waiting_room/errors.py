"""What the waiting room can refuse."""

from datetime import datetime
from types import MappingProxyType

from app.core.errors import DomainError


class NotYetAdmitted(DomainError):
    """Registering, dropping or swapping in a semester whose waiting room is on, without an
    admitted place: none asked for yet (`position` null), or one still behind the frontier
    (its `position`, `estimated_admission_at` and a `Retry-After`)."""

    status_code = 409
    code = "NOT_YET_ADMITTED"
    detail = "The semester's waiting room is on: ask for a place (POST /semesters/{id}/queue) and wait for your turn"

    def __init__(
        self, *, position: int | None = None, estimated_admission_at: datetime | None = None, retry_after: int = 1
    ) -> None:
        super().__init__(position=position, estimated_admission_at=estimated_admission_at)
        self.headers = MappingProxyType({"Retry-After": str(retry_after)})


class AdmissionTokenInvalid(DomainError):
    """An X-Admission-Token that is not one of ours for this student and semester: a bad
    signature, expired, another student's, another semester's, or an access token."""

    status_code = 403
    code = "INVALID_ADMISSION_TOKEN"
    detail = "This admission token is not valid for you in this semester; ask for your place again"


class NoQueuePlace(DomainError):
    status_code = 404
    code = "NO_QUEUE_PLACE"
    detail = "You have no place in this semester's waiting room; ask for one with POST /semesters/{id}/queue"
