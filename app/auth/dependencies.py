from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.errors import NotAuthenticated
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


async def login_turn(request: Request) -> AsyncIterator[None]:
    """Wait on the event loop for one of the worker's login turns (LOGIN_TURNS).

    A worker completes only a few logins at once: each password check holds a
    core for 0.2-0.3 s. Without turns, 200 logins arriving together all entered
    the threadpool at once and made their throttle writes in the same second,
    and reads waited behind them. Waiting here holds no thread and no database
    connection; the turns are created in the app's lifespan, on its event loop.
    """
    async with request.app.state.login_turns:
        yield
