from app.core.errors import DomainError


class IdempotencyKeyReused(DomainError):
    """The key is bound to another request: a conflict with stored state, so 409
    (it was 422 until 2026-12; a schema-valid request answered 422 reads to a
    generated client, and to Schemathesis, as a validation bug). The code is unchanged."""

    status_code = 409
    code = "IDEMPOTENCY_KEY_REUSED"
    detail = "This Idempotency-Key was already used for a different request"
