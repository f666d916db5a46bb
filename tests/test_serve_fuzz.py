"""The API fuzzed from its own OpenAPI schema by Schemathesis, in-process, against the bundled
model: no request it can make gets a 5xx, and every answer is one the schema documents.

One check is left out: `positive_data_acceptance` expects a 2xx for every request the schema
allows, but a schema cannot say which bytes are a picture of a digit (or which numbers a 28x28
image: the pixels route names the shape in words), so the service's 400 for random bytes is the
right answer there. `negative_data_rejection` and the rest run.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from digit_keras.serving import BUNDLED_MODEL_DIR
from digit_keras.serving.app import create_app, load_served_model

schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(load_served_model(BUNDLED_MODEL_DIR))
)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_a_documented_answer_and_no_server_error(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
