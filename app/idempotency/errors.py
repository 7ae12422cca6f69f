from app.core.errors import DomainError


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    detail = "This Idempotency-Key was already used for a different request"
