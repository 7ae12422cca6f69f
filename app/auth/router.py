from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from app.auth import service
from app.auth.dependencies import CurrentStudent, login_turn
from app.auth.schemas import LoginRequest, StudentRead, Token
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
    dependencies=[Depends(login_turn)],
    responses=errors(BODY, DATABASE, ("INVALID_CREDENTIALS", "TOO_MANY_LOGIN_ATTEMPTS")),
)
def login(body: LoginRequest, session: SessionDep, request: Request) -> Response:
    settings = request.app.state.settings
    student = service.authenticate(
        session,
        student_number=body.student_number,
        password=body.password,
        # Behind a proxy, run uvicorn with --proxy-headers so this is the real client.
        client_address=request.client.host if request.client else "unknown",
        settings=settings,
        now=datetime.now(UTC),
    )
    token = create_access_token(student_id=student.id, student_number=student.student_number, settings=settings)
    return _TOKEN.response(Token(access_token=token, expires_in=settings.access_token_expire_minutes * 60))


@router.get("/me", response_model=StudentRead, responses=errors(AUTHENTICATED, DATABASE))
def read_current_student(current: CurrentStudent, session: SessionDep) -> Response:
    return _STUDENT.response(service.get_student(session, student_id=current.student_id))
