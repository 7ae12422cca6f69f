"""Who is asking: the bearer token's subject, by kind and role.

- `CurrentStudent`: student routes; a staff token is 403 FORBIDDEN.
- `ClaimedStudent`: the same for a route whose own statement proves the student
  exists (it writes or reads a row that references them): no separate check.
- `CurrentStaff`: any staff account; a student token is 403.
- `RequireRegistrar` / `CurrentRegistrar`: a staff token with the registrar role.
  An /admin router takes it once: `APIRouter(dependencies=[RequireRegistrar])`.

No token is 401 NOT_AUTHENTICATED; a bad one, or one whose account is gone, 401
INVALID_TOKEN, before any kind or role is looked at.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.errors import Forbidden, NotAuthenticated
from app.auth.schemas import LoginRequest
from app.core.security import AccessTokens, StaffSubject, StudentSubject, SubjectKind, TokenSubject
from app.staff.models import StaffRole
from app.staff.schemas import StaffLoginRequest

# auto_error=False: we answer a missing token ourselves, with our error body.
bearer_scheme = HTTPBearer(
    auto_error=False, description="The access token from POST /auth/login (students) or /auth/staff/login (staff)"
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise NotAuthenticated()
    return credentials.credentials


async def _first_seen_subject(request: Request, token: str) -> TokenSubject:
    """A token this worker sees for the first time: decoded, and its account looked up
    once, in the threadpool. A validly signed token whose student (or staff account,
    or its role) is gone is 401 INVALID_TOKEN on every route, and is never remembered."""
    tokens: AccessTokens = request.app.state.access_tokens
    subject = tokens.decode(token)
    await run_in_threadpool(service.ensure_subject_exists, request.app.state.read_engine, subject)
    tokens.remember(token, subject)
    return subject


async def get_current_student(request: Request, credentials: Credentials) -> StudentSubject:
    """The student the bearer token names; a staff token is never read as a student.

    `async def`: a token this worker has seen before costs a dictionary lookup on
    the event loop, no thread hop and no query."""
    token = _bearer_token(credentials)
    subject = request.app.state.access_tokens.remembered(token) or await _first_seen_subject(request, token)
    return _as_student(request, subject)


def _as_student(request: Request, subject: TokenSubject) -> StudentSubject:
    """A student's subject (named in the access log); a staff token is 403."""
    if not isinstance(subject, StudentSubject):
        raise Forbidden("This route is for students; staff tokens are not accepted")
    request.state.student_id = subject.student_id
    return subject


CurrentStudent = Annotated[StudentSubject, Depends(get_current_student)]


@dataclass(frozen=True, slots=True)
class StudentClaim:
    """A student token whose signature and claims are checked, but not yet that its student
    exists. For a route whose own statement proves it, and saves the first-use lookup (the
    waiting room: at the opening every token is new, thousands a second): the route calls
    `confirm()` once its row referencing the student was found or written, and this worker
    then treats the token as checked; when the student is gone, it answers InvalidToken."""

    subject: StudentSubject
    token: str
    tokens: AccessTokens

    @property
    def student_id(self) -> uuid.UUID:
        return self.subject.student_id

    def confirm(self) -> None:
        self.tokens.remember(self.token, self.subject)


async def get_student_claim(request: Request, credentials: Credentials) -> StudentClaim:
    token = _bearer_token(credentials)
    tokens: AccessTokens = request.app.state.access_tokens
    subject = _as_student(request, tokens.remembered(token) or tokens.decode(token))
    return StudentClaim(subject, token, tokens)


ClaimedStudent = Annotated[StudentClaim, Depends(get_student_claim)]


async def get_current_staff(request: Request, credentials: Credentials) -> StaffSubject:
    token = _bearer_token(credentials)
    subject = request.app.state.access_tokens.remembered(token) or await _first_seen_subject(request, token)
    if not isinstance(subject, StaffSubject):
        raise Forbidden("This route is for staff; student tokens are not accepted")
    request.state.staff_id = subject.staff_id
    return subject


CurrentStaff = Annotated[StaffSubject, Depends(get_current_staff)]


def require_role(role: StaffRole) -> Callable[..., Awaitable[StaffSubject]]:
    """A dependency: the staff member, when their token carries `role`; else 403 FORBIDDEN.
    Build it once per role (below): FastAPI then runs it once per request even when
    both a router and a handler ask for it."""

    async def staff_with_role(staff: CurrentStaff) -> StaffSubject:
        if staff.role != role:
            raise Forbidden(f"This route needs the {role.value} role")
        return staff

    staff_with_role.__name__ = f"require_{role.value}"
    return staff_with_role


RequireRegistrar = Depends(require_role(StaffRole.REGISTRAR))
CurrentRegistrar = Annotated[StaffSubject, RequireRegistrar]


def client_address(request: Request) -> str:
    """The address the login throttle counts. Behind a proxy, FORWARDED_ALLOW_IPS
    makes this the real client (app/runtime/server.py)."""
    return request.client.host if request.client else "unknown"


async def _admit(request: Request, *, account: str, kind: SubjectKind) -> AsyncIterator[None]:
    """Let a login through to its password check, on the event loop:

    1. one cheap read of its throttle counts (app/auth/service.py::login_delay):
       a scope already at its limit is 429 now, with no wait and no turn;
    2. when the account's failures from everywhere are past their budget, wait
       (`asyncio.sleep`: no thread, no database connection, no login turn held);
    3. wait for one of the worker's login turns (LOGIN_TURNS).

    The turns: a worker completes only a few logins at once, since each password
    check holds a core for 0.2-0.3 s. Without them, 200 logins arriving together
    all entered the threadpool at once and made their throttle writes in the
    same second, and reads waited behind them. The turns are created in the
    app's lifespan, on its event loop.
    """
    delay = await run_in_threadpool(
        service.login_delay,
        request.app.state.read_engine,
        account=account,
        account_kind=kind,
        client_address=client_address(request),
        settings=request.app.state.settings,
        now=datetime.now(UTC),
    )
    if delay > 0:
        await asyncio.sleep(delay)
    async with request.app.state.login_turns:
        yield


async def admit_login(request: Request, body: LoginRequest) -> AsyncIterator[LoginRequest]:
    """A student's login, admitted (see `_admit`)."""
    async for _ in _admit(request, account=body.student_number, kind=SubjectKind.STUDENT):
        yield body


async def admit_staff_login(request: Request, body: StaffLoginRequest) -> AsyncIterator[StaffLoginRequest]:
    """A staff member's login, admitted (see `_admit`); counted in scopes of their own."""
    async for _ in _admit(request, account=body.username, kind=SubjectKind.STAFF):
        yield body


AdmittedLogin = Annotated[LoginRequest, Depends(admit_login)]
AdmittedStaffLogin = Annotated[StaffLoginRequest, Depends(admit_staff_login)]
