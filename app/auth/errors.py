"""Errors of logging in, of bearer tokens and of refresh tokens."""

from app.core.errors import BEARER_CHALLENGE, DomainError


class NotAuthenticated(DomainError):
    status_code = 401
    code = "NOT_AUTHENTICATED"
    detail = "Not authenticated"
    headers = BEARER_CHALLENGE


class InvalidToken(DomainError):
    status_code = 401
    code = "INVALID_TOKEN"
    detail = "Invalid or expired token"
    headers = BEARER_CHALLENGE


class Forbidden(DomainError):
    """A valid token of the wrong kind or role: a staff token on a student route,
    a student token on an /admin route."""

    status_code = 403
    code = "FORBIDDEN"
    detail = "This token does not allow this request"


class InvalidRefreshToken(DomainError):
    """Unknown, expired, revoked or already used (which revokes its whole family)."""

    status_code = 401
    code = "INVALID_REFRESH_TOKEN"
    detail = "Invalid, expired or revoked refresh token; log in again"
    headers = BEARER_CHALLENGE


class InvalidCredentials(DomainError):
    status_code = 401
    code = "INVALID_CREDENTIALS"
    detail = "Incorrect student number or password"
    headers = BEARER_CHALLENGE


class TooManyLoginAttempts(DomainError):
    status_code = 429
    code = "TOO_MANY_LOGIN_ATTEMPTS"
    detail = "Too many failed logins; try again later"

    def __init__(self, retry_after_seconds: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_seconds)}
