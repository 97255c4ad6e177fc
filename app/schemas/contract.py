"""The OpenAPI document made to say exactly what the API accepts and sends.

FastAPI derives the document from the models; this module adds what the models cannot say by
themselves, so that a client generated from the schema (or a fuzzer such as schemathesis) never
sends what the API refuses, and never receives what the schema does not describe:

- initializers: one schema per registry entry, built from the registry's own parameter rules
  (names, types, bounds, enums, ``only_with``), no unknown parameter names; a bias initializer
  only among the entries that can draw a vector (not ``kernel_only``);
- this deployment's per-field limits (``INITLAB_MAX_*``: epochs, hidden layers and units, seeds)
  and the data sets' sizes as maxima;
- the bearer token: an HTTP ``bearer`` security scheme, required by the writes when
  ``INITLAB_API_TOKEN`` is set, and by the reads too with ``INITLAB_READ_REQUIRES_TOKEN``;
- the request guard's answers (app/security.py): 403 for a cross-origin write, 415 for a write
  that is not JSON.

What JSON Schema cannot express stays a 422 from the API, named in the descriptions: rules that
relate two fields (a random_uniform's minval below its maxval, each initializer listed once
counting ``"he_normal"`` and ``{"id": "he_normal"}`` as one, the runs and parameters of a whole
study within ``INITLAB_MAX_RUNS_PER_STUDY`` / ``INITLAB_MAX_PARAMETERS``, a probe's cost).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from app.domain.datasets import DATASETS
from app.domain.param_rules import MAX_MAGNITUDE
from app.domain.registry import REGISTRY, InitializerEntry
from app.settings import Settings

WRITE_METHODS = ("post", "put", "patch", "delete")
NUMBER_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
BEARER = "bearer"
CROSS_FIELD_RULES = (
    "Rules JSON Schema cannot express are checked by the API (422): each initializer (with its "
    "parameters) listed once, a bare id and {\"id\": id} being the same; random_uniform's minval below "
    "its maxval; the whole study within INITLAB_MAX_RUNS_PER_STUDY runs and INITLAB_MAX_PARAMETERS "
    "weights per network; the model's family and its shape: conv_channels, kernel_size and pooling only "
    "with family cnn, which needs a convolution, an mlp a hidden layer, residual stacks an odd number of "
    "layers (at least 3), at most 4 pooled conv blocks (a cnn's depths too); the signal probe within a "
    "study's limits and INITLAB_MAX_PROBE_WEIGHTS / INITLAB_MAX_PROBE_ACTIVATIONS.")
GUARD_RESPONSES: dict[str, dict[str, Any]] = {
    "403": {"description": "a browser's cross-origin write (Origin or Sec-Fetch-Site), refused",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}},
    "415": {"description": "a write must be sent as Content-Type: application/json",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}},
}


def param_schema(rule: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one parameter rule (app/domain/param_rules.py)."""
    if rule["type"] == "string":
        schema: dict[str, Any] = {"type": "string"}
        if "enum" in rule:
            schema["enum"] = list(rule["enum"])
    else:
        # check_value's own defaults: a number without bounds of its own stays within ±MAX_MAGNITUDE.
        schema = {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE,
                  **{key: rule[key] for key in NUMBER_BOUNDS if key in rule}}
        if schema.get("exclusiveMinimum", -MAX_MAGNITUDE) > schema["minimum"]:
            del schema["minimum"]  # the exclusive bound is the tighter one
    return {"anyOf": [schema, {"type": "null"}]} if rule.get("nullable") else schema


def _params_schema(entry: InitializerEntry) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {name: param_schema(entry.rule(name)) for name in entry.params},
    }
    combinations = []
    for name in entry.params:
        for other, allowed in entry.rule(name).get("only_with", {}).items():
            # Merged over the defaults, ``name`` must stay null unless ``other`` holds an allowed value.
            unset = {"properties": {name: {"type": "null"}}}
            if entry.params.get(name) is not None:
                unset["required"] = [name]
            allowed_other: dict[str, Any] = {"properties": {other: {"enum": list(allowed)}}}
            if entry.params.get(other) not in allowed:
                allowed_other["required"] = [other]
            combinations.append({"anyOf": [unset, allowed_other]})
    if combinations:
        schema["allOf"] = combinations
    if entry.check is not None:
        schema["description"] = "also checked together by the API (e.g. minval below maxval; 422 otherwise)"
    return schema


def initializer_schema(kernel: bool = True) -> dict[str, Any]:
    """An initializer reference: a bare registry id, or {id, params} with that entry's own parameters."""
    entries = [entry for entry in REGISTRY.values() if kernel or not entry.kernel_only]
    return {"anyOf": [
        {"type": "string", "enum": [entry.id for entry in entries]},
        *({"type": "object", "title": entry.id, "additionalProperties": False, "required": ["id"],
           "properties": {"id": {"const": entry.id}, "params": _params_schema(entry)}} for entry in entries),
    ], "description": "a registry id, or {\"id\", \"params\"} (GET /api/initializers lists each one's rules)"
                      + ("" if kernel else "; a bias vector cannot take a kernel-only scheme (orthogonal, lsuv)")}


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a schema: its anyOf branches, or itself."""
    return schema.get("anyOf", [schema])


def _arrays(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [option for option in _options(schema) if option.get("type") == "array"]


def _set_initializers(component: dict[str, Any], *, output: bool = False) -> None:
    properties = component["properties"]
    if output:
        extra = {key: value for key, value in properties["output_initializer"].items() if key != "anyOf"}
        choice = initializer_schema(kernel=True)
        properties["output_initializer"] = {**extra, "anyOf": [*choice["anyOf"], {"type": "null"}]}
        return
    for array in _arrays(properties["initializers"]):
        array["items"] = initializer_schema(kernel=True)
    keep = {key: value for key, value in properties["bias_initializer"].items() if key in ("default", "title")}
    properties["bias_initializer"] = {**keep, **initializer_schema(kernel=False)}


def _integer_bound(schema: dict[str, Any], maximum: int) -> None:
    """Lower an integer's maximum (an integer schema or one branch of a nullable one)."""
    for option in _options(schema):
        if option.get("type") == "integer":
            option["maximum"] = min(option.get("maximum", maximum), maximum)


def _same(values: list[int]) -> int | None:
    return values[0] if values and len(set(values)) == 1 else None


def refine(openapi: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The document FastAPI generated, refined (a new dict)."""
    doc = copy.deepcopy(openapi)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})

    for name in ("StudyCreate", "SignalRequest"):
        if name in schemas:
            _set_initializers(schemas[name])
    if "ModelSpec" in schemas:
        model = schemas["ModelSpec"]
        _set_initializers(model, output=True)
        units = model["properties"]["hidden_units"]
        units["maxItems"] = min(units.get("maxItems", settings.max_hidden_layers), settings.max_hidden_layers)
        _integer_bound(units["items"], settings.max_hidden_units)
    if "DatasetSpec" in schemas:
        # Every data set has the same split sizes (60000/10000 today); otherwise the size stays a 422.
        dataset = schemas["DatasetSpec"]["properties"]
        for field, size in (("train_samples", _same([info.train_size for info in DATASETS.values()])),
                            ("validation_samples", _same([info.test_size for info in DATASETS.values()]))):
            if size is not None:
                _integer_bound(dataset[field], size)
    if "TrainingSpec" in schemas:
        _integer_bound(schemas["TrainingSpec"]["properties"]["epochs"], settings.max_epochs)
    if "StudyCreate" in schemas:
        study = schemas["StudyCreate"]
        properties = study["properties"]
        properties["seeds"]["maxItems"] = settings.max_seeds
        for array in _arrays(properties["depths"]):
            _integer_bound(array["items"], settings.max_hidden_layers)
        if "weight_variances" in properties:
            _sweep_or_initializers(study)
        if settings.max_train_samples < max(info.train_size for info in DATASETS.values()):
            cap = {"anyOf": [{"type": "integer", "maximum": settings.max_train_samples}, {"type": "null"}]}
            study["properties"]["dataset"] = {"allOf": [study["properties"]["dataset"],
                                                        {"properties": {"train_samples": cap}}]}
        for field in ("seeds", "activations", "depths", "weight_variances", "bias_variances"):
            for array in _arrays(properties.get(field, {})):
                array["uniqueItems"] = True
        study["description"] = f"{study.get('description', '')}\n\n{CROSS_FIELD_RULES}".strip()
    if "SignalRequest" in schemas:
        schemas["SignalRequest"]["description"] = (
            f"{schemas['SignalRequest'].get('description', '')}\n\nThe probe's cost is checked by the API (422): "
            "INITLAB_MAX_PARAMETERS, INITLAB_MAX_PROBE_WEIGHTS, INITLAB_MAX_PROBE_ACTIVATIONS.").strip()

    doc["components"].setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "INITLAB_API_TOKEN; needed by the writes when it is set, and by the reads too with "
                       "INITLAB_READ_REQUIRES_TOKEN"}
    token = settings.api_token is not None and bool(settings.api_token.get_secret_value())
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in (*WRITE_METHODS, "get", "head") or not isinstance(operation, dict):
                continue
            write = method in WRITE_METHODS
            if write:
                for status, response in GUARD_RESPONSES.items():
                    operation.setdefault("responses", {}).setdefault(status, copy.deepcopy(response))
            if token and path.startswith("/api/") and (write or settings.read_requires_token):
                operation["security"] = [{BEARER: []}]
    if "#/components/schemas/InitializerRef" not in json.dumps(doc):
        schemas.pop("InitializerRef", None)  # replaced by the per-entry schemas above
    return doc


def _sweep_or_initializers(study: dict[str, Any]) -> None:
    """A study names its initializers, or sweeps weight_variances (then bias_variances and
    scaled_initializer may come too, and every σ_w² is positive), never both (app/domain/spec.py)."""
    properties = study["properties"]
    for array in _arrays(properties["weight_variances"]):
        for item in _options(array["items"]):
            if item.get("type") == "number" and item.get("minimum") == 0:
                del item["minimum"]
                item["exclusiveMinimum"] = 0
    absent_or_null = {"type": "null"}
    study["anyOf"] = [
        {"required": ["initializers"], "properties": {
            "initializers": {"type": "array"}, "weight_variances": absent_or_null,
            **{name: absent_or_null for name in ("bias_variances", "scaled_initializer") if name in properties}}},
        {"required": ["weight_variances"], "properties": {
            "weight_variances": {"type": "array"}, "initializers": absent_or_null}},
    ]
