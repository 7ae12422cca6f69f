"""What creating staff accounts can refuse."""

from app.core.errors import Conflict


class StaffUsernameTaken(Conflict):
    """Raised by scripts.create_staff (and by any future admin route: a 409 CONFLICT)."""

    detail = "A staff account with this username already exists"
