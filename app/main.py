"""The application factory: settings, database, routers, middleware and error handlers."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy import event

from app.admin.router import router as admin_router
from app.auth.router import router as auth_router
from app.core.admission import AdmissionGate, LoopLag, worker_pressure
from app.core.cache import ResponseCache
from app.core.config import Settings, get_settings
from app.core.cors import BrowserCORSMiddleware
from app.core.db import create_catalogue_engine, create_db_engine, create_read_engine, create_session_factory
from app.core.edge import AllowedHostsMiddleware, HeadAsGetMiddleware
from app.core.errors import install_error_handlers
from app.core.limits import BodySizeLimitMiddleware
from app.core.observability import RequestContextMiddleware, metrics_router
from app.core.openapi import install_openapi, operation_id
from app.core.security import LOGIN_TURNS, AccessTokens, dummy_password_hash
from app.courses.router import router as courses_router
from app.health import router as health_router
from app.registrations.router import router as registrations_router
from app.registrations.statements import prepare_on_connect
from app.semesters.router import router as semesters_router
from app.staff.router import router as staff_router
from app.waiting_room.places import PlaceBatches
from app.waiting_room.router import router as waiting_room_router
from app.waiting_room.state import WaitingRooms


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
        app.state.login_turns = asyncio.Semaphore(LOGIN_TURNS)
        # Computed now, not on the first unknown student number, so that login's
        # timing never tells whether a student number exists.
        dummy_password_hash(settings.bcrypt_rounds)
        app.state.loop_lag.start()
        yield
        app.state.loop_lag.stop()
        app.state.engine.dispose()
        app.state.read_engine.dispose()
        if app.state.catalogue_engine is not app.state.read_engine:
            app.state.catalogue_engine.dispose()

    app = FastAPI(
        title="Course Registration Service",
        version="1.0.0",
        description="Register for courses during the registration rush: enrollment, reserve lists, promotion.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # Served by install_openapi from local assets, when enabled.
        docs_url=None,
        redoc_url=None,
        # Starlette's slash redirects are absolute URLs built from the client's Host
        # header; no route of ours needs one (/semesters is served as /semesters/).
        redirect_slashes=False,
    )
    # The engine connects lazily: the app starts even while the database is down.
    app.state.settings = settings
    app.state.engine = create_db_engine(settings)
    if settings.db_prepared_statements:
        event.listen(app.state.engine, "connect", prepare_on_connect)
    app.state.session_factory = create_session_factory(app.state.engine)
    app.state.read_engine = create_read_engine(settings)
    # The catalogue's reads: a standby when DATABASE_READ_URL is set, else read_engine itself.
    app.state.catalogue_engine = create_catalogue_engine(settings, app.state.read_engine)
    app.state.response_cache = ResponseCache(ttl_seconds=settings.catalogue_cache_seconds)
    app.state.access_tokens = AccessTokens(settings)
    write_capacity = settings.write_admission_capacity or settings.db_pool_size
    app.state.write_gate = AdmissionGate(
        capacity=write_capacity,
        per_key_limit=settings.write_admission_per_course or max(1, write_capacity // 2),
        queue_limit=settings.write_admission_queue,
        max_wait_seconds=settings.admission_max_wait_seconds,
    )
    app.state.read_gate = AdmissionGate(
        capacity=settings.read_admission_capacity or settings.db_read_pool_size,
        queue_limit=settings.read_admission_queue,
        max_wait_seconds=settings.admission_max_wait_seconds,
    )
    # Places in the waiting room are written in batches, outside the read gate (their own bound).
    app.state.places = PlaceBatches(app.state.read_engine)
    app.state.loop_lag = LoopLag()
    app.state.waiting_rooms = WaitingRooms(
        engine=app.state.read_engine,
        settings=settings,
        pressure=worker_pressure(
            [app.state.write_gate, app.state.read_gate], app.state.loop_lag, places=app.state.places
        ),
    )

    install_error_handlers(app)
    # Matched in this order, one router's routes after another's: the registration day's
    # hot paths first (no two routers share a path, so the order changes no answer).
    for router in (
        registrations_router,
        waiting_room_router,
        courses_router,
        semesters_router,
        auth_router,
        staff_router,
        health_router,
        metrics_router,
        admin_router,
    ):
        app.include_router(router)
    install_openapi(app, docs_enabled=settings.serve_docs)

    # Added innermost first: the request context wraps everything, so even a 413
    # or a CORS preflight gets a request id, a log line and a metric.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        BrowserCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=False,  # bearer tokens, never cookies: so "*" can never leak credentials
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],  # the last three: /admin
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Admission-Token", "X-Request-ID"],
        expose_headers=["X-Request-ID", "X-Total-Count", "Retry-After", "Idempotent-Replayed"],
    )
    app.add_middleware(HeadAsGetMiddleware)
    if "*" not in settings.allowed_host_names:
        app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_host_names)
    app.add_middleware(RequestContextMiddleware, log_requests=settings.request_log)
    return app
