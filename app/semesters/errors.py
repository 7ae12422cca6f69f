from app.core.errors import VALIDATION_ERROR, Conflict, DomainError


class SemesterNotFound(DomainError):
    status_code = 404
    code = "SEMESTER_NOT_FOUND"
    detail = "Semester not found"


class SemesterNameTaken(Conflict):
    detail = "A semester with this name already exists"


class RegistrationWindowInvalid(DomainError):
    """A window whose end is not after its start, once an edit is combined with the
    stored values: a 422 like any other invalid input, with the same `errors` shape."""

    status_code = 422
    code = VALIDATION_ERROR.code
    detail = VALIDATION_ERROR.detail

    def __init__(self) -> None:
        super().__init__(
            errors=[
                {
                    "loc": ["body", "registration_end"],
                    "msg": "registration_end must be after registration_start",
                    "type": "value_error",
                }
            ]
        )
