"""What every registrar's write needs to know: who, when, which request."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import CurrentRegistrar
from app.registrations.service import WriteContext


async def registrar_context(request: Request, registrar: CurrentRegistrar) -> WriteContext:
    """The registrar as the actor of a change (`staff:<username>`), with the request id for
    the audit trail. `async def`: no I/O."""
    return WriteContext(
        now=datetime.now(UTC),
        actor=f"staff:{registrar.username}",
        request_id=getattr(request.state, "request_id", None),
        default_max_credits=request.app.state.settings.default_max_credits,
    )


RegistrarContext = Annotated[WriteContext, Depends(registrar_context)]
