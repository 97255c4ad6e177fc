"""Schemathesis hooks for test_api_fuzz*.py (support/fuzz.py) (loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks).

One check replaces schemathesis's ``positive_data_acceptance`` ("a schema-valid request is
accepted"): the same check, except for a 422 whose every error is one of the API's rules that JSON
Schema cannot express (app/schemas/contract.py says which; the OpenAPI descriptions name them). Any
other 422 of a schema-valid request (a rule the schema could say but does not) is still a failure.
"""

from __future__ import annotations

import json

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

# (error type or None for any, a phrase the message must hold): rules relating two fields, one request
# to an earlier one, or a whole study's cost; none can be written in JSON Schema.
CROSS_FIELD_RULES = (
    (None, "each initializer (with its parameters) may be listed once"),  # "he_normal" == {"id": "he_normal"}
    (None, "must be below maxval"),  # random_uniform: minval < maxval, merged over the defaults
    ("limit", "INITLAB_MAX_RUNS_PER_STUDY"),  # initializers x seeds x activations x depths
    ("limit", "INITLAB_MAX_PARAMETERS"),  # widths x depth
    (None, "INITLAB_MAX_PARAMETERS"),  # the signal probe's model
    (None, "INITLAB_MAX_PROBE_WEIGHTS"),
    (None, "INITLAB_MAX_PROBE_ACTIVATIONS"),
    ("idempotency_key_reused", ""),  # the same Idempotency-Key sent earlier with another study
    ("queue_not_served", ""),  # a study's queue that no live worker serves (GET /api/workers lists them)
    # the model's family and its shape (app/domain/blocks.py): fields that apply to one family only,
    # layer counts that residual blocks and 2×2 pooling allow
    (None, "applies only with family cnn"),
    (None, "family cnn needs at least one convolution"),
    (None, "an mlp needs at least one hidden layer"),
    (None, "with residual, a plain first layer then blocks of two"),
    (None, "applies only with residual: true"),  # zero_init_residual
    (None, "would shrink the 28×28 image to nothing"),
    (None, "a cnn's depth is its conv blocks"),
)


def only_cross_field_rules(body: object) -> bool:
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list) or not detail:
        return False
    return all(isinstance(error, dict) and any(
        (kind is None or error.get("type") == kind) and phrase in str(error.get("msg", ""))
        for kind, phrase in CROSS_FIELD_RULES) for error in detail)


@schemathesis.check
def valid_data_accepted_but_cross_field_rules(ctx, response, case):
    """positive_data_acceptance, but a 422 for a cross-field rule alone is the API being right."""
    if response.status_code == 422:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if only_cross_field_rules(body):
            return None
    return positive_data_acceptance(ctx, response, case)
