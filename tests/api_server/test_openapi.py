"""The server honours its own OpenAPI document (schemathesis, property-based)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from scrums_velocity.api_server import create_app, generate
from tests.conftest import NOW

DATASET = generate(tasks=300, seed=13, now=NOW)
APP = create_app(DATASET)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
HEADERS = {"Authorization": f"Bearer {DATASET.admin_token}"}


def documented_rejection(case) -> str | None:
    """The error code a schema-valid request must get for a rule OpenAPI cannot express
    (both rules are written in the operation's description), or None."""
    if case.meta is not None and case.meta.generation.mode != GenerationMode.POSITIVE:
        return None  # schema-violating input: the ordinary negative checks apply
    if case.method in ("POST", "PATCH"):
        # the workspace's require_task_service_line setting; a LIN of another workspace
        return "service_line_required|invalid_service_line"
    if case.method != "GET" or case.path != "/v1/tasks":
        return None
    query = case.query or {}
    if "workspace_id" not in query and "service_line_id" not in query:
        return "missing_parameter"
    if "cursor" in query:
        return "invalid_cursor"  # unless the cursor was one this server issued earlier
    return None


def unsent_extra_query(case, response) -> bool:
    """A negative case whose undocumented query keys never reached the server (the HTTP client
    drops keys whose value is, say, an empty list): the server rightly saw a valid request."""
    documented = {p.name for p in case.operation.query}
    extra = set(case.query or {}) - documented
    sent = set(parse_qs(urlsplit(response.request.url).query, keep_blank_values=True))
    return bool(extra) and not (sent - documented)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    expected = documented_rejection(case)
    if expected is None:
        response = case.call(headers=HEADERS)
        excluded = [negative_data_rejection] if unsent_extra_query(case, response) else []
        case.validate_response(response, headers=HEADERS, excluded_checks=excluded)
        return
    # Positive acceptance allows 2xx, 401, 403, 404 and 429 and so do we; a 400 on schema-valid
    # input must be for the documented rule and nothing else.
    response = case.call_and_validate(headers=HEADERS, excluded_checks=[positive_data_acceptance])
    assert response.status_code in (200, 400, 401, 403, 404, 429), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] in expected.split("|"), response.text
    elif expected == "missing_parameter":
        raise AssertionError(f"no workspace_id or service_line_id, yet {response.status_code}")


def test_document_covers_every_endpoint():
    paths = APP.state.openapi["paths"]
    assert set(paths) == {"/v1/tasks", "/v1/tasks/{task_id}", "/_mock/delivery-velocity"}
    assert set(paths["/v1/tasks"]) == {"get", "post"}
    assert set(paths["/v1/tasks/{task_id}"]) == {"parameters", "get", "patch"}
