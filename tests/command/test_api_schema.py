"""The API against its own OpenAPI document, by schemathesis, on the demo database.

For every operation of /openapi.json, schemathesis sends the schema's examples, its coverage cases (boundary and
invalid values of each parameter) and a few generated requests, in process over ASGI, and checks each answer:
no 5xx, a documented status code, the documented content type, and a body that matches the documented schema.

Bounded and deterministic: few generated examples per operation, derandomized, no example database.

The app is built when this module is imported, because schemathesis needs the document to make the tests, and its
fixture-based loader (schemathesis.pytest.from_fixture) does not work with pytest 9 (it sets `request.node._nodeid`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analyser.api import create_app
from sensor.ingest import ingest
from tests.helpers.paths import ROOT

CAPTURE = str(ROOT / "captures" / "demo-plant.pcap")
ZONES = str(ROOT / "captures" / "demo-zones.yaml")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 15  # generated requests per operation, on top of the schema's examples and coverage cases


class LifespanOnce:
    """The app, its lifespan run once for the whole module, as uvicorn runs it once per process.

    schemathesis ends an ASGI app's lifespan after every test and starts it again before the next one; sorf's
    Source does not come back from a shutdown (see test_api_security.test_lifespan_restart_serves)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return


def _app():
    tmp = tempfile.mkdtemp(prefix="sorf-api-schema-")
    db = os.path.join(tmp, "demo.duckdb")
    results = ingest([CAPTURE], db)
    assert [r.status for r in results] == ["ok"], results
    app = create_app(db, ZONES)
    source = app.state.source

    def cleanup() -> None:  # atexit runs it after schemathesis has stopped its ASGI portal (registered later)
        source.close()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    return LifespanOnce(app)


# an explicit Config: no schemathesis.toml found on the way up from the working directory changes this run
schema = schemathesis.openapi.from_asgi("/openapi.json", _app(), config=schemathesis.Config())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)  # fmt: skip
def test_api_matches_its_openapi_document(case):
    case.call_and_validate(checks=CHECKS)
