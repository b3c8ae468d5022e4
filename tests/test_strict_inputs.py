"""Request bodies take each value only as the type the contract declares (issue 12, item 12).

Found from outside by schemathesis's negative-data checks against both live twins:
``PATCH /users/{id}`` with ``"is_superuser": 0`` answered 200, because pydantic's lax mode reads
0, 1, "yes" and "off" as booleans and "5" as a number. A schema-violating request accepted on
a privilege flag. Random generation seldom produces exactly these values, so this test walks
the OpenAPI document and sends, for every property of every JSON body, the values of other
JSON types that a lax parser would convert.
"""

from typing import Any

import httpx2
import pytest

from shared.web.contract import openapi_document
from tests.support import Account, assert_validation_error

# What a lax parser turns into each declared type; none of them is of that type in JSON.
LOOKALIKES: dict[str, list[object]] = {
    "boolean": [0, 1, 1.0, "true", "false", "yes", "off", "1"],
    "integer": ["5", 5.5, True],
    "number": ["5", True],
    "string": [5, 5.5, True, ["text"], {"text": "text"}],
}


def json_bodies() -> list[tuple[str, str, str, str]]:
    """(method, path, property, declared type) for every scalar property of every JSON body."""
    document = openapi_document()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            reference = content["application/json"]["schema"]["$ref"]
            schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
            for name, declared in schema["properties"].items():
                for kind in declared_types(declared):
                    found.append((method.upper(), path, name, kind))
    return found


def declared_types(declared: dict[str, Any]) -> list[str]:
    options = declared.get("anyOf", [declared])
    return [option["type"] for option in options if option.get("type") in LOOKALIKES]


FIELDS = json_bodies()


@pytest.mark.parametrize(
    ("method", "path", "name", "kind"), FIELDS, ids=[f"{m} {p} {n}" for m, p, n, _ in FIELDS]
)
def test_a_body_value_of_another_json_type_is_refused(
    client: httpx2.Client,
    admin: Account,
    user: Account,
    method: str,
    path: str,
    name: str,
    kind: str,
) -> None:
    # The admin acts on the user, so a wrongly accepted change would reach a real account.
    url = path.removeprefix("/api/v1").replace("{user_id}", str(user.id))
    token = admin.headers if "{user_id}" in path else user.headers
    for value in LOOKALIKES[kind]:
        response = client.request(method, url, json={name: value}, headers=token)
        assert_validation_error(response, ["body", name])
    me = client.get("/users/me", headers=user.headers)
    assert me.status_code == 200
    assert (me.json()["is_superuser"], me.json()["is_active"]) == (False, True)
