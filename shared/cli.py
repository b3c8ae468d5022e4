"""``authtwin`` command line: administration that needs no running server."""

import argparse
import getpass
import sys

from pydantic import ValidationError

from shared.infrastructure.config import Settings
from shared.runtime import Runtime


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise SystemExit("Passwords do not match")
    return password


def create_superuser(email: str, *, password_stdin: bool) -> int:
    runtime = Runtime.build(Settings())
    runtime.prepare()
    password = _read_password(password_stdin)
    try:
        # The policy the API applies to every password it sets, with its reason.
        if problem := runtime.policy.problem(password, email=email):
            print(f"error: password: {problem}", file=sys.stderr)
            return 2
        with runtime.sessions() as session:
            user = runtime.users.ensure_superuser(session=session, email=email, password=password)
    except ValidationError as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: {messages}", file=sys.stderr)
        return 2
    finally:
        runtime.dispose()
    print(f"superuser {user.email} (id {user.id}) is ready")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="authtwin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-superuser", help="create a superuser, or promote an existing account"
    )
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    args = parser.parse_args(argv)
    return create_superuser(args.email, password_stdin=args.password_stdin)


if __name__ == "__main__":
    sys.exit(main())
