from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from app.auth import service
from app.auth.dependencies import AdmittedLogin, CurrentStudent, client_address
from app.auth.schemas import RefreshRequest, StudentRead, Token
from app.core.db import SessionDep
from app.core.openapi import AUTHENTICATED, BODY, DATABASE, errors
from app.core.responses import JSONBody

router = APIRouter(prefix="/auth", tags=["auth"])

_TOKEN = JSONBody(Token)
_STUDENT = JSONBody(StudentRead)


def token_response(tokens: service.IssuedTokens) -> Response:
    return _TOKEN.response(
        Token(access_token=tokens.access_token, expires_in=tokens.expires_in, refresh_token=tokens.refresh_token)
    )


@router.post(
    "/login",
    response_model=Token,
    responses=errors(BODY, DATABASE, ("INVALID_CREDENTIALS", "TOO_MANY_LOGIN_ATTEMPTS")),
)
def login(body: AdmittedLogin, session: SessionDep, request: Request) -> Response:
    """Runs once `admit_login` let it through: after any slowdown, within a login turn."""
    tokens = service.login(
        session,
        student_number=body.student_number,
        password=body.password,
        client_address=client_address(request),
        settings=request.app.state.settings,
        now=datetime.now(UTC),
    )
    return token_response(tokens)


@router.post("/refresh", response_model=Token, responses=errors(BODY, DATABASE, ("INVALID_REFRESH_TOKEN",)))
def refresh_tokens(body: RefreshRequest, session: SessionDep, request: Request) -> Response:
    """Trade a refresh token (student or staff) for a new access token and a new refresh token.
    The old one stops working; presenting it again revokes every token of its login."""
    tokens = service.refresh(
        session, refresh_token=body.refresh_token, settings=request.app.state.settings, now=datetime.now(UTC)
    )
    return token_response(tokens)


@router.post("/logout", status_code=204, response_class=Response, responses=errors(BODY, DATABASE))
def logout(body: RefreshRequest, session: SessionDep) -> Response:
    """Revoke the refresh token and every token of its login. The same answer for a token
    that is unknown or already revoked. Access tokens expire on their own (`expires_in`)."""
    service.logout(session, refresh_token=body.refresh_token, now=datetime.now(UTC))
    return Response(status_code=204)


@router.get("/me", response_model=StudentRead, responses=errors(AUTHENTICATED, DATABASE))
def read_current_student(current: CurrentStudent, session: SessionDep, request: Request) -> Response:
    """The student, with their credit limit, completed courses and active holds."""
    default_max_credits = request.app.state.settings.default_max_credits
    student = service.get_student(session, student_id=current.student_id, default_max_credits=default_max_credits)
    return _STUDENT.response(student)
