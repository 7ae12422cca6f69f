from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import AdmittedStaffLogin, client_address
from app.auth.schemas import Token
from app.core.db import SessionDep
from app.core.openapi import BODY, DATABASE, errors
from app.core.responses import JSONBody
from app.staff import service

router = APIRouter(prefix="/auth/staff", tags=["auth"])

_TOKEN = JSONBody(Token)


@router.post(
    "/login",
    response_model=Token,
    responses=errors(BODY, DATABASE, ("INVALID_CREDENTIALS", "TOO_MANY_LOGIN_ATTEMPTS")),
)
def login_staff(body: AdmittedStaffLogin, session: SessionDep, request: Request) -> Response:
    """A staff member's login: the same answer as a student's, with the role in the access token."""
    tokens = service.login(
        session,
        username=body.username,
        password=body.password,
        client_address=client_address(request),
        settings=request.app.state.settings,
        now=datetime.now(UTC),
    )
    return _TOKEN.response(
        Token(access_token=tokens.access_token, expires_in=tokens.expires_in, refresh_token=tokens.refresh_token)
    )
