from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from app.core.openapi import DATABASE, errors

router = APIRouter(tags=["health"])


class HealthStatus(BaseModel):
    status: str


@router.get("/health", response_model=HealthStatus, responses=errors())
def health() -> HealthStatus:
    """Liveness: the process answers. Touches no database."""
    return HealthStatus(status="ok")


@router.get("/ready", response_model=HealthStatus, responses=errors(DATABASE))
def ready(request: Request) -> HealthStatus:
    """Readiness: the database answers. A failure becomes 503 DATABASE_UNAVAILABLE."""
    with request.app.state.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return HealthStatus(status="ready")
