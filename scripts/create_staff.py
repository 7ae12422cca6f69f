"""Create a staff account (the way to get one in production: no default account exists there).

python -m scripts.create_staff --username jdoe --name "Jane Doe" [--role registrar]
    asks for the password twice (getpass), or reads one line from stdin with --password-stdin.

Exit status 1, and nothing written, when the username exists or the password is unfit.
"""

import argparse
import getpass
import re
import sys

from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.security import BCRYPT_MAX_PASSWORD_BYTES
from app.staff.errors import StaffUsernameTaken
from app.staff.models import StaffRole
from app.staff.schemas import USERNAME_MAX_LENGTH
from app.staff.service import create_staff
from scripts.seed_common import engine_from_settings

MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(rf"^[A-Za-z0-9._@-]{{1,{USERNAME_MAX_LENGTH}}}$")


def password_problem(password: str) -> str | None:
    """Why this password cannot be a staff password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
        return f"the password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt reads no more)"
    if "\x00" in password:
        return "the password must not contain NUL characters"
    return None


def read_password(*, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != password:
        raise SystemExit("error: the passwords differ")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--username", required=True, help="letters, digits and . _ @ -")
    parser.add_argument("--name", required=True, help="the person's name, as shown to other staff")
    parser.add_argument("--role", choices=[role.value for role in StaffRole], default=StaffRole.REGISTRAR.value)
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    args = parser.parse_args(argv)

    if not USERNAME_PATTERN.match(args.username):
        print(f"error: a username is 1-{USERNAME_MAX_LENGTH} letters, digits and . _ @ -", file=sys.stderr)
        return 1
    if not args.name.strip() or len(args.name) > 200:
        print("error: the name must be 1-200 characters", file=sys.stderr)
        return 1
    password = read_password(from_stdin=args.password_stdin)
    problem = password_problem(password)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1

    engine = engine_from_settings()
    try:
        with Session(engine) as session:
            staff = create_staff(
                session,
                username=args.username,
                name=args.name.strip(),
                role=StaffRole(args.role),
                password=password,
                bcrypt_rounds=get_settings().bcrypt_rounds,
            )
    except StaffUsernameTaken:
        print(f"error: a staff account named {args.username!r} already exists", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"created staff account {staff.username} ({staff.role.value}), id {staff.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
