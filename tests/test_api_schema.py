"""The integration API against its own OpenAPI schema: schemathesis, run as its CLI, against
the live schema (``/api/schema/``) of a live Vitrine (its own process, embedded mode, the
demo model, a small demo shop), with an API key of both scopes.

Every request schemathesis makes (the schema's examples, the coverage of each parameter's
edges, fuzzed data, and stateful sequences such as create, read, delete, read again) must
get no server error, a documented status code, a documented content type and headers, and
a body that matches the schema. Products and images may be deleted along the way: that is
part of the run.

Not checked: ``positive_data_acceptance`` and ``negative_data_rejection``. The schema
cannot say everything the API checks (``ids`` *or* ``product``, something to search for, a
product with an indexed photo, a URL that can be fetched), and the API takes some harmless
input the schema does not describe (an empty ``updated_since`` is ignored), so these two
would fail on correct behaviour.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest

from tests.conftest import live_api_start

# The longest test: a group of its own, so the other test process takes the rest meanwhile.
pytestmark = [pytest.mark.live, pytest.mark.schemathesis, pytest.mark.xdist_group("schemathesis")]

# Per API operation, for the fuzzing and stateful phases; the coverage phase (each
# parameter's boundaries and wrong types) does not depend on it. About two minutes in all.
MAX_EXAMPLES = 25
SEED = 20240611
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    # Without the key, every operation but health answers 401.
    "ignored_auth",
    # Headers the schema requires (the API key's, when the schema says so) cannot be left out.
    "missing_required_header",
    # A method an endpoint does not have answers 405 with an Allow header that says which it has.
    "unsupported_method",
    "allow_header_conformance",
    # Stateful: what was created can be read; what was deleted is gone.
    "use_after_free",
    "ensure_resource_availability",
]
OUTPUT_TAIL = 100_000
SERVER_LOG_TAIL = 20_000
# The server log's routine lines: runserver's access log, and the warnings about 4xx answers
# (plain, and again through the root logger). What remains: errors and their tracebacks.
CLIENT_ERRORS = "|".join(re.escape(status.phrase) for status in HTTPStatus if 400 <= status < 500)
ROUTINE_LOG_LINE = re.compile(
    rf"^\[\d\d/\w{{3}}/\d{{4}} [\d:]+\] |^(?:\S+ \S+ WARNING django\.request: )?(?:{CLIENT_ERRORS}): /"
)


def schemathesis_executable() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if found is None:
        pytest.fail(
            "schemathesis is not installed in this environment: it is a test dependency (pyproject's dev extra)"
        )
    return found


def log_tail(live) -> str:
    """The end of the server's log, without the routine lines."""
    lines = live.log_text().splitlines()
    return "\n".join(line for line in lines if not ROUTINE_LOG_LINE.match(line))[-SERVER_LOG_TAIL:]


@pytest.fixture(scope="module")
def live_api(schema_template, tmp_path_factory):
    # URLs to fetch are made up by schemathesis: let them fail fast.
    live = live_api_start(
        schema_template,
        tmp_path_factory.mktemp("schema-api"),
        VITRINE_FETCH_TIMEOUT="1",
        VITRINE_FETCH_TOTAL_TIMEOUT="2",
    )
    try:
        yield live
    finally:
        live.stop()


def test_api_matches_its_live_schema(live_api, tmp_path):
    # An empty configuration file: a schemathesis.toml lying around changes nothing.
    config = tmp_path / "schemathesis.toml"
    config.write_text("")
    command = [
        schemathesis_executable(),
        "--config-file",
        str(config),
        "run",
        f"{live_api.url}/api/schema/",
        "--header",
        f"Authorization: Bearer {live_api.key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # No replay of earlier runs' failures: the same run every time.
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--wait-for-schema",
        "60",
        "--no-color",
    ]
    # cwd: schemathesis keeps caches (.schemathesis, .hypothesis) where it runs.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    (tmp_path / "schemathesis-output.txt").write_text(output)
    assert done.returncode == 0, (
        f"schemathesis found problems (exit code {done.returncode}; its whole output is in "
        f"{tmp_path / 'schemathesis-output.txt'}):\n{output[-OUTPUT_TAIL:]}\n"
        f"--- the server's log, without the access log and the 4xx warnings ---\n{log_tail(live_api)}"
    )
