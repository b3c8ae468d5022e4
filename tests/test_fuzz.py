"""Schema fuzzing (issue 4, item 3): schemathesis generates requests for every operation of
the contract and checks each twin's answers against it — no server error, only documented
status codes, documented content types and headers, bodies that match their schemas.

Each twin is loaded in-process from its own ``/openapi.json`` (the one contract), on SQLite,
and every request carries a fresh superuser token, so authenticated operations are reached
(an unverified account's, for the one operation a superuser cannot perform: asking for a
verification link).
Valid and invalid inputs are both generated (positive and negative modes). The budget is
``AUTHTWIN_FUZZ_EXAMPLES`` cases per operation and mode: a few, derandomised (the same every
run), for ``make test``; many, random, for ``make fuzz``.
"""

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shared.domain import errors
from shared.domain.schemas import UserCreate
from shared.runtime import Runtime
from shared.web.contract import openapi_document
from tests.clients import SCHEMAS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, in_process_settings, migrated_sqlite

pytestmark = pytest.mark.in_process
EXAMPLES = int(os.environ.get("AUTHTWIN_FUZZ_EXAMPLES", "8"))
VERIFICATION_REQUEST = "/api/v1/auth/verify/request"
DEEP = "AUTHTWIN_FUZZ_EXAMPLES" in os.environ
# The event stream never ends while its token is good: a fuzzed call would wait for ever.
# tests/test_events.py covers it, over a real socket, on every target.
STREAMS = {"GET /api/v1/users/me/events"}
# Every operation of the contract; invalid input only for those that take some.
CASES = [
    (f"{method.upper()} {path}", mode)
    for path, item in openapi_document()["paths"].items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or {"parameters", "requestBody"} & set(operation)
    if f"{method.upper()} {path}" not in STREAMS
]


@pytest.fixture(params=list(SCHEMAS), scope="module")
def twin(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Runtime]]:
    """One twin in-process on a SQLite file of its own: its schema, loaded from the app, and
    its runtime (for logging in without HTTP)."""
    database = tmp_path_factory.mktemp(request.param) / "fuzz.db"
    with SCHEMAS[request.param](in_process_settings(migrated_sqlite(database))) as loaded:
        yield loaded


def superuser_token(runtime: Runtime) -> str:
    """A fresh token of the first superuser, recreated if a generated request removed it."""
    for _ in range(2):
        with runtime.sessions() as session:
            try:
                pair = runtime.auth.login(
                    session=session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD,
                    client_ip="127.0.0.1",
                )  # fmt: skip
                return pair.access_token
            except errors.DomainError:
                runtime.prepare()
    pytest.fail("the first superuser could not log in")


def new_account(runtime: Runtime) -> int:
    """An ordinary account for one generated request to act on (change, demote, delete)."""
    data = UserCreate(email=f"target-{uuid.uuid4().hex}@example.com", password=uuid.uuid4().hex)
    with runtime.sessions() as session:
        return runtime.users.create_user(session=session, data=data).id


def unverified_token(runtime: Runtime) -> str:
    """A token of a new ordinary account, whose address is not proved yet. The superuser's
    counts as proved, so its every request for a verification link is a 409: with this one
    the 202 is checked against the contract too."""
    data = UserCreate(email=f"unverified-{uuid.uuid4().hex}@example.com", password=uuid.uuid4().hex)
    with runtime.sessions() as session:
        runtime.users.create_user(session=session, data=data)
        pair = runtime.auth.login(
            session=session, email=data.email, password=data.password, client_ip="127.0.0.1"
        )
    return pair.access_token


def aim_at_an_account(case: Any, runtime: Runtime) -> None:
    """Point a well-formed ``{user_id}`` at an account that exists.

    A generated id names no one, and a 404 says nothing about the body: the lax booleans an
    outside run found (``"is_superuser": 0`` answered 200) hid behind it. A negative path
    value is left as generated, for the path's own validation.
    """
    if "user_id" in (case.path_parameters or {}) and not case.meta.is_negative_at(
        ParameterLocation.PATH
    ):
        case.path_parameters["user_id"] = new_account(runtime)


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{lb} {m.value}" for lb, m in CASES])
def test_every_operation_answers_as_the_contract_says(
    twin: tuple[Any, Runtime], label: str, mode: GenerationMode
) -> None:
    schema, runtime = twin
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    unverified = unverified_token(runtime) if path == VERIFICATION_REQUEST else None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=not DEEP,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:  # a schemathesis Case
        token = unverified or superuser_token(runtime)
        aim_at_an_account(case, runtime)
        # Every check but one: "schema-valid data is accepted" does not hold for an auth API,
        # which refuses valid-looking input on grounds no schema states (a common password,
        # an address at a reserved domain, an email already taken) with a documented 4xx.
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            excluded_checks=[positive_data_acceptance],
        )
        statuses.add(response.status_code)

    statuses: set[int] = set()
    answers_as_documented()
    if path == VERIFICATION_REQUEST and mode is GenerationMode.POSITIVE:
        assert 202 in statuses, f"{label}: the unverified account was never mailed a link"
    # A 401 is a documented answer too: prove the token got the requests past authentication,
    # or the fuzzing never reached what the operation does.
    secured = bool(openapi_document()["paths"][path][method.lower()].get("security"))
    # Logout's body is a second token, which generated data can never make valid: its 401s
    # come after authentication, and the contract tests cover what it does.
    if secured and mode is GenerationMode.POSITIVE and path != "/api/v1/auth/logout":
        assert statuses - {401}, f"{label}: every request was refused as unauthenticated"
