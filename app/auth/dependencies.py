from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.errors import NotAuthenticated
from app.core.security import TokenSubject

# auto_error=False: we answer a missing token ourselves, with our error body.
bearer_scheme = HTTPBearer(auto_error=False, description="The access token from POST /auth/login")


async def get_current_student(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenSubject:
    """The student the bearer token names. `async def`: checking a JWT is a little
    CPU and no I/O (no database lookup), so it runs on the event loop, no thread hop."""
    if credentials is None:
        raise NotAuthenticated()
    subject = request.app.state.access_tokens.verify(credentials.credentials)
    request.state.student_id = subject.student_id
    return subject


CurrentStudent = Annotated[TokenSubject, Depends(get_current_student)]
