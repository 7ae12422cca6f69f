import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.errors import NotAuthenticated
from app.auth.schemas import LoginRequest
from app.core.security import AccessTokens, TokenSubject

# auto_error=False: we answer a missing token ourselves, with our error body.
bearer_scheme = HTTPBearer(auto_error=False, description="The access token from POST /auth/login")


async def get_current_student(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenSubject:
    """The student the bearer token names.

    `async def`: a token this worker has seen before costs a dictionary lookup on
    the event loop, no thread hop and no query. A token seen for the first time
    is decoded, and its student looked up once, in the threadpool: a validly
    signed token whose student is gone is 401 INVALID_TOKEN on every route, and
    is never remembered.
    """
    if credentials is None:
        raise NotAuthenticated()
    token = credentials.credentials
    tokens: AccessTokens = request.app.state.access_tokens
    subject = tokens.remembered(token)
    if subject is None:
        subject = tokens.decode(token)
        await run_in_threadpool(service.ensure_student_exists, request.app.state.read_engine, subject.student_id)
        tokens.remember(token, subject)
    request.state.student_id = subject.student_id
    return subject


CurrentStudent = Annotated[TokenSubject, Depends(get_current_student)]


def client_address(request: Request) -> str:
    """The address login protection counts against. Behind a proxy, uvicorn's
    proxy headers make this the real client (docs: FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


async def admit_login(request: Request, body: LoginRequest) -> AsyncIterator[LoginRequest]:
    """Let a login through to its password check, on the event loop:

    1. one cheap read of its throttle counts (app/auth/service.py::login_delay):
       a scope already at its limit is 429 now, with no wait and no turn;
    2. when the student's failures from everywhere are past their budget, wait
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
        student_number=body.student_number,
        client_address=client_address(request),
        settings=request.app.state.settings,
        now=datetime.now(UTC),
    )
    if delay > 0:
        await asyncio.sleep(delay)
    async with request.app.state.login_turns:
        yield body


AdmittedLogin = Annotated[LoginRequest, Depends(admit_login)]
