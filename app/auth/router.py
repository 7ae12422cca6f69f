from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from app.auth import service
from app.auth.dependencies import AdmittedLogin, CurrentStudent, client_address
from app.auth.schemas import StudentRead, Token
from app.core.db import SessionDep
from app.core.openapi import AUTHENTICATED, BODY, DATABASE, errors
from app.core.responses import JSONBody
from app.core.security import create_access_token

router = APIRouter(prefix="/auth", tags=["auth"])

_TOKEN = JSONBody(Token)
_STUDENT = JSONBody(StudentRead)


@router.post(
    "/login",
    response_model=Token,
    responses=errors(BODY, DATABASE, ("INVALID_CREDENTIALS", "TOO_MANY_LOGIN_ATTEMPTS")),
)
def login(body: AdmittedLogin, session: SessionDep, request: Request) -> Response:
    """Runs once `admit_login` let it through: after any slowdown, within a login turn."""
    settings = request.app.state.settings
    student = service.authenticate(
        session,
        student_number=body.student_number,
        password=body.password,
        client_address=client_address(request),
        settings=settings,
        now=datetime.now(UTC),
    )
    token = create_access_token(student_id=student.id, student_number=student.student_number, settings=settings)
    return _TOKEN.response(Token(access_token=token, expires_in=settings.access_token_expire_minutes * 60))


@router.get("/me", response_model=StudentRead, responses=errors(AUTHENTICATED, DATABASE))
def read_current_student(current: CurrentStudent, session: SessionDep, request: Request) -> Response:
    """The student, with their credit limit, completed courses and active holds."""
    default_max_credits = request.app.state.settings.default_max_credits
    student = service.get_student(session, student_id=current.student_id, default_max_credits=default_max_credits)
    return _STUDENT.response(student)
