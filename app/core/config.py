"""Settings, read once from the environment (and `.env` when present)."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET_KEY = "change-me-in-production-this-is-only-for-development"
MIN_PRODUCTION_SECRET_KEY_BYTES = 32


def normalize_database_url(url: str) -> str:
    """Name the psycopg2 driver explicitly, and keep libpq's multi-host form working.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` URL to psycopg 3, which we do
    not install; ``postgres://`` (Heroku style) is not recognised at all.

    libpq's multi-host form, ``postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write``,
    is refused by SQLAlchemy's URL parser (it reads ``5432,h2:5433`` as one port), so
    the hosts move into the query as SQLAlchemy's own form for it,
    ``postgresql+psycopg2://u@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write``;
    the psycopg2 dialect hands libpq ``host=h1,h2 port=5432,5433`` again.
    """
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + _hosts_in_query(url[len(prefix) :])
    return url


def _hosts_in_query(rest: str) -> str:
    """``user@h1:p1,h2:p2/db?x=y`` -> ``user@/db?host=h1:p1&host=h2:p2&x=y``; one host: unchanged."""
    cut = min((index for index in (rest.find("/"), rest.find("?")) if index >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return rest
    path, question, query = tail.partition("?")
    host_params = "&".join(f"host={host}" for host in hosts.split(",") if host)
    return f"{userinfo}{at}{path or '/'}?{host_params}{'&' + query if question and query else ''}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # Database. Unset in development: `make run` starts an embedded PostgreSQL. May name
    # several hosts (libpq's multi-host form) with target_session_attrs=read-write: every
    # new connection then finds whichever of them is the primary now (docs/deployment.md).
    database_url: str = ""
    # Optional: where the catalogue (semesters, courses and their seat counts) is read,
    # typically a standby first (target_session_attrs=prefer-standby). Unset: the primary.
    # A student's own reads and every write stay on DATABASE_URL (read-your-writes).
    database_read_url: str = ""
    # Test each pooled connection with a round trip before handing it out. Off: a
    # connection broken by a failover fails once (a retryable 503) and SQLAlchemy then
    # discards every connection of the pool that is older (docs/deployment.md).
    db_pool_pre_ping: bool = False
    # Threads serving plain `def` endpoints, per worker process (anyio's default is
    # 40). Each login waiting for its password check holds one, so a login storm
    # must not be able to take them all.
    threadpool_size: int = 200
    # Connections per worker process. Requests beyond them wait in the pool, in
    # order, rather than in PostgreSQL's lock queue. No overflow by default: an
    # overflow connection is closed as soon as it is returned, so under sustained
    # load it costs a new PostgreSQL backend per request (docs/performance.md).
    db_pool_size: int = 10
    db_max_overflow: int = 0
    db_pool_timeout_seconds: float = 10.0
    # A second pool, per worker, for reads that are one statement each (the
    # catalogue, my-courses), so reads never queue behind registrations.
    db_read_pool_size: int = 10
    db_read_max_overflow: int = 0
    # Bounds on how long one request may wait for a lock or run a statement.
    # Prepare the registration transaction's hottest statements once per write
    # connection (planned once, not on every registration). Turn off behind
    # PgBouncer in transaction mode, where a connection's prepared statements
    # are not the next transaction's.
    db_prepared_statements: bool = True
    db_lock_timeout_ms: int = 5_000
    db_statement_timeout_ms: int = 15_000

    # How long each worker keeps a catalogue answer (a semester's courses, one
    # course): the seat counts students see may lag by up to this. 0 turns it off.
    catalogue_cache_seconds: float = 1.0

    # Authentication.
    secret_key: str = DEVELOPMENT_SECRET_KEY
    access_token_expire_minutes: int = 60
    bcrypt_rounds: int = 12
    # Refresh tokens (POST /auth/refresh): each one lives this long from its issue;
    # every refresh issues the next one, so a session ends after this much idleness.
    refresh_token_expire_days: int = 14

    # Login protection (app/auth/throttle.py; README, "Login protection").
    # Failed logins, counted in a fixed window: per student *and* client address
    # (attempts in progress count too), 429 past the limit; per client address
    # across all students, 429 past the limit (generous: a whole campus may share
    # one address behind NAT).
    login_failure_window_seconds: int = Field(default=300, ge=1)
    login_max_failures_per_client_and_student: int = Field(default=5, ge=1)
    login_max_failures_per_client: int = Field(default=100, ge=1)
    # Per student from every address: past this many failures in the window, each
    # attempt waits before its password is checked, FIRST seconds doubling up to
    # MAX. Never a 429: guesses from elsewhere slow the owner down, never lock them out.
    login_student_failures_before_slowdown: int = Field(default=10, ge=1)
    login_slowdown_first_seconds: float = Field(default=0.25, ge=0)
    login_slowdown_max_seconds: float = Field(default=4.0, ge=0)
    # Successful logins, counted in their own fixed window: per student, and per
    # client address (generous: a campus behind one NAT address, our load tests).
    login_success_window_seconds: int = Field(default=60, ge=1)
    login_max_successes_per_student: int = Field(default=10, ge=1)
    login_max_successes_per_client: int = Field(default=3000, ge=1)

    # How long a stored Idempotency-Key response is replayed.
    idempotency_key_ttl_hours: int = 24

    # Largest request body accepted (bytes); anything larger is a 413.
    max_request_body_bytes: int = 16 * 1024

    # Browser origins allowed by CORS, comma-separated. Unset: localhost dev
    # servers in development, none in production. "*" is allowed only because
    # the API never uses cookies (credentials stay off).
    cors_allowed_origins: str | None = None

    # Host names this API answers to, comma-separated; "*.example.edu" matches its
    # subdomains. A request naming another host is refused with 400 INVALID_HOST.
    # "*" (the default) accepts any: no answer of ours ever repeats the Host header
    # (no absolute redirects), so this is a second line, set it in production.
    allowed_hosts: str = "*"

    # Connections, enforced by the server (python -m app.runtime.server; plain
    # `uvicorn app.asgi:app` has none of these). A request head (request line and
    # headers) larger than max_request_head_bytes is 431; one not complete within
    # request_head_timeout_seconds of its first byte (or of the connection) is 408
    # and closed; an idle keep-alive connection is closed after
    # keep_alive_timeout_seconds; past max_connections_per_worker open
    # connections, requests are answered 503 SERVICE_BUSY with a Retry-After from how
    # fast the worker's connections close and how many it refused lately. The server
    # raises its soft open-file limit to fit them (and serves fewer, with a warning,
    # when the hard limit is too low).
    max_request_head_bytes: int = 16 * 1024
    request_head_timeout_seconds: float = 10.0
    keep_alive_timeout_seconds: float = 5.0
    max_connections_per_worker: int = Field(default=4096, ge=1)
    # Proxies whose X-Forwarded-For names the client (comma-separated IPs or
    # networks, "*" for any). Empty: none; the peer's own address is the client's.
    # The login throttle counts exactly this address.
    forwarded_allow_ips: str = ""

    # Admission control per worker (app/core/admission.py): registration writes
    # (register, drop, swap) in progress at once, and how many more may wait, in
    # arrival order, at most this long; past the queue, 503 SERVICE_BUSY at once with
    # a Retry-After from the measured drain rate. Reads of one's own data
    # (my-courses, my-status, my-history) have a gate of their own. 0: the
    # connection pool's size.
    write_admission_capacity: int = 0
    # About a second of a worker's writes at the opening's pace (docs/performance.md,
    # "The write gate's queue"): a write that would wait less is better queued than refused.
    write_admission_queue: int = 250
    # Of the writes in progress, how many may be for one course (0: half of them), so a
    # course whose row is held up (a stuck transaction) never stops the other courses.
    write_admission_per_course: int = 0
    read_admission_capacity: int = 0
    read_admission_queue: int = 200
    admission_max_wait_seconds: float = 2.0

    # The waiting room (app/waiting_room/; README, "The waiting room"). On for a semester
    # when the registrar switches it on, or by default during the first this-many minutes
    # of its registration window; 0: never by default (only the registrar's switch).
    waiting_room_default_minutes: float = Field(default=0, ge=0)
    # The frontier moves at most once per this many seconds, cluster-wide (a guarded
    # UPDATE of the room's row), and a worker keeps a room's state this long, so an
    # admission check costs no query.
    waiting_room_tick_seconds: float = Field(default=0.25, gt=0, le=5)
    # The adaptive pace (no fixed rate set), in students admitted per second: it starts
    # at INITIAL, grows slowly while admitted requests go straight through the gates (and
    # the event loop runs on time), and is cut by a fifth when they queue or are refused,
    # at most once per COOLDOWN (app/waiting_room/rules.py), within [MIN, MAX].
    waiting_room_initial_rate_per_s: float = Field(default=50, gt=0)
    waiting_room_min_rate_per_s: float = Field(default=10, gt=0)
    waiting_room_max_rate_per_s: float = Field(default=2000, gt=0)
    waiting_room_cut_cooldown_seconds: float = Field(default=8, ge=0)
    # How long an admission token (X-Admission-Token) stays valid after it is issued.
    admission_token_expire_minutes: int = Field(default=720, ge=1)

    # Registration rules: the credit limit of a student who has none of their own.
    default_max_credits: int = 18

    # Swagger UI (/docs) and ReDoc (/redoc), from local assets. Unset: on, except
    # in production. /openapi.json is always served (clients generate from it).
    docs_enabled: bool | None = None

    log_level: str = "INFO"
    # One structured line per request on the "app.access" logger.
    request_log: bool = True

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> "Settings":
        if self.environment != "production":
            return self
        if self.secret_key == DEVELOPMENT_SECRET_KEY:
            raise ValueError("SECRET_KEY must be set to a real secret when ENVIRONMENT=production")
        # HS256 signs with a 256-bit key: a shorter (or empty) secret can be guessed offline.
        if len(self.secret_key.encode()) < MIN_PRODUCTION_SECRET_KEY_BYTES:
            raise ValueError(
                f"SECRET_KEY must be at least {MIN_PRODUCTION_SECRET_KEY_BYTES} bytes when ENVIRONMENT=production"
            )
        return self

    @property
    def cors_origins(self) -> list[str]:
        if self.cors_allowed_origins is not None:
            return [origin.strip() for origin in self.cors_allowed_origins.split(",") if origin.strip()]
        if self.environment == "production":
            return []
        return [f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (3000, 5173)]

    @property
    def serve_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else self.environment != "production"

    @property
    def allowed_host_names(self) -> list[str]:
        return [host.strip().lower() for host in self.allowed_hosts.split(",") if host.strip()]

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set. Use `make run` (which starts an embedded "
                "PostgreSQL) or export DATABASE_URL=postgresql://user:pass@host/db."
            )
        return self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
