"""The OpenAPI document says what the API sends and accepts (issue 11, item 8): NaN and Infinity are
declared where they travel, the schema refuses what the API refuses (a baseline that names no
initializer, a kernel-only bias, a parameter an initializer does not have), OPTIONS lists the real
methods, and the bearer token is a security scheme /docs can send."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from app.domain.registry import REGISTRY

STUDY = {"name": "contract", "dataset": {"name": "mnist", "train_samples": 100}, "training": {"epochs": 1},
         "initializers": ["he_normal"], "seeds": [0]}


def validator(openapi: dict, ref: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for one schema of the document (its $refs resolved inside the document)."""
    return jsonschema_rs.Draft202012Validator({"$ref": ref, "components": openapi["components"]})


def response_schema(openapi: dict, path: str, method: str = "get", status: str = "200") -> dict:
    return openapi["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def parameter_schema(openapi: dict, path: str, name: str) -> dict:
    return next(p["schema"] for p in openapi["paths"][path]["get"]["parameters"] if p["name"] == name)


def body_property(openapi: dict, component: str, name: str) -> jsonschema_rs.Draft202012Validator:
    return validator(openapi, f"#/components/schemas/{component}/properties/{name}")


def test_nan_and_infinity_travel_as_strings_the_schema_declares(sqlite_app):
    from support.factories import write_study

    study_id = write_study()  # random_normal seed 1 diverges: loss NaN, val_loss Infinity, NaN/Inf weights
    openapi = sqlite_app.get("/openapi.json").json()
    for path, template in ((f"/api/studies/{study_id}/metrics", "/api/studies/{study_id}/metrics"),
                           (f"/api/studies/{study_id}/summary", "/api/studies/{study_id}/summary"),
                           ("/api/runs/{}/layers?epoch=3", "/api/runs/{run_id}/layers")):
        if "{}" in path:
            run_id = sqlite_app.get(f"/api/studies/{study_id}").json()["runs"][-1]["id"]
            path = path.format(run_id)
        response = sqlite_app.get(path)
        assert response.status_code == 200, response.text
        assert "NaN" in response.text or "Infinity" in response.text, path
        schema = response_schema(openapi, template)
        check = jsonschema_rs.Draft202012Validator({**schema, "components": openapi["components"]})
        errors = [error.message for error in check.iter_errors(json.loads(response.text))]
        assert errors == [], (path, errors[:3])


def test_the_schema_refuses_what_the_api_refuses(sqlite_app):
    openapi = sqlite_app.get("/openapi.json").json()
    summary = "/api/studies/{study_id}/summary"
    baseline = jsonschema_rs.Draft202012Validator(parameter_schema(openapi, summary, "baseline"))
    for key in ("0", "he_magic", "he_normal(\x00)"):
        assert not baseline.is_valid(key), key
        assert sqlite_app.get("/api/studies/1/summary", params={"baseline": key}).status_code == 422, key
    for key in ("he_normal", "random_normal(stddev=0.01)", "he_normal_untruncated"):
        assert baseline.is_valid(key), key

    bias = body_property(openapi, "StudyCreate", "bias_initializer")
    kernels = validator(openapi, "#/components/schemas/StudyCreate/properties/initializers")
    for kernel_only in (entry.id for entry in REGISTRY.values() if entry.kernel_only):
        for written in (kernel_only, {"id": kernel_only}):
            assert not bias.is_valid(written) and kernels.is_valid([written]), written
            response = sqlite_app.post("/api/studies", json={**STUDY, "bias_initializer": written})
            assert response.status_code == 422 and response.json()["detail"][0]["field"] == "bias_initializer"
    assert bias.is_valid("zeros") and bias.is_valid({"id": "constant", "params": {"value": 0.1}})


@pytest.mark.parametrize("init_id", sorted(REGISTRY))
def test_each_initializer_takes_exactly_its_own_parameters(sqlite_app, init_id):
    openapi = sqlite_app.get("/openapi.json").json()
    kernels = validator(openapi, "#/components/schemas/StudyCreate/properties/initializers")
    defaults = {name: value for name, value in REGISTRY[init_id].params.items() if value is not None}
    given = {"id": init_id, "params": defaults}
    assert kernels.is_valid([given])
    created = sqlite_app.post("/api/studies", json={**STUDY, "initializers": [given]})
    assert created.status_code == 201, created.text

    unknown = {"id": init_id, "params": {**defaults, "stdev": 0.1}}  # a misspelt parameter
    assert not kernels.is_valid([unknown])
    refused = sqlite_app.post("/api/studies", json={**STUDY, "initializers": [unknown]})
    assert refused.status_code == 422, refused.text


def test_parameter_rules_are_in_the_schema(sqlite_app):
    openapi = sqlite_app.get("/openapi.json").json()
    kernels = validator(openapi, "#/components/schemas/StudyCreate/properties/initializers")
    for refused in ({"id": "random_normal", "params": {"stddev": 0}}, {"id": "custom", "params": {"mode": "sideways"}},
                    {"id": "custom", "params": {"distribution": "uniform", "clip_sigma": 2}},
                    {"id": "custom", "params": {"clip_sigma": 7}}, {"id": "constant", "params": {"value": 1e300}},
                    {"id": "constant", "params": {"value": True}}, {"id": "constant", "params": {"value": "1"}}):
        assert not kernels.is_valid([refused]), refused
        assert sqlite_app.post("/api/studies", json={**STUDY, "initializers": [refused]}).status_code == 422, refused
    accepted = {"id": "custom", "params": {"distribution": "truncated_normal", "clip_sigma": 3, "scale": 2}}
    assert kernels.is_valid([accepted])
    assert sqlite_app.post("/api/studies", json={**STUDY, "initializers": [accepted]}).status_code == 201


def test_an_integral_number_is_an_integer_as_json_schema_says(sqlite_app):
    # JSON Schema's "integer" holds 3.0; the API reads it as 3 (and still refuses 3.5, true and "3").
    response = sqlite_app.post("/api/studies", json={**STUDY, "seeds": [0.0, 1.0], "training": {"epochs": 2.0}})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["seeds"] == [0, 1] and response.json()["spec"]["training"]["epochs"] == 2
    for broken in ({"seeds": [0.5]}, {"seeds": [True]}, {"seeds": ["1"]}):
        assert sqlite_app.post("/api/studies", json={**STUDY, **broken}).status_code == 422, broken


def test_options_and_405_list_every_method_of_the_path(sqlite_app):
    options = sqlite_app.options("/api/studies")
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert set(sqlite_app.options("/api/studies/1").headers["allow"].split(", ")) == {"GET", "DELETE", "OPTIONS"}
    assert set(sqlite_app.options("/api/runs/1/cancel").headers["allow"].split(", ")) == {"POST", "OPTIONS"}
    put = sqlite_app.put("/api/studies", json={})
    assert put.status_code == 405 and set(put.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert sqlite_app.delete("/api/runs/1").headers["allow"] == "GET, OPTIONS"
    assert sqlite_app.options("/api/nothing-here").status_code == 404


def _operations(openapi: dict):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_bearer_token_is_a_security_scheme_on_the_writes(migrated):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_API_TOKEN="s3cret-token")
    with TestClient(create_app()) as client:
        openapi = client.get("/openapi.json").json()
    assert openapi["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": openapi["components"]["securitySchemes"]["bearer"]["description"]}
    writes = [(path, method) for path, method, _ in _operations(openapi) if method in ("post", "put", "patch", "delete")]
    assert ("/api/studies", "post") in writes and ("/api/runs/{run_id}/cancel", "post") in writes
    for path, method, operation in _operations(openapi):
        write = method in ("post", "put", "patch", "delete")
        assert (operation.get("security") == [{"bearer": []}]) == write, (method, path)
        if write:
            assert {"401", "403", "415"} <= set(operation["responses"]), (method, path)


def test_reads_are_marked_when_they_need_the_token_and_nothing_without_one(migrated):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import get_settings

    migrated(INITLAB_API_TOKEN="s3cret-token", INITLAB_READ_REQUIRES_TOKEN="true")
    with TestClient(create_app()) as client:
        openapi = client.get("/openapi.json").json()
    for path, method, operation in _operations(openapi):
        assert (operation.get("security") == [{"bearer": []}]) == path.startswith("/api/"), (method, path)

    migrated(INITLAB_API_TOKEN="")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        openapi = client.get("/openapi.json").json()
    assert "bearer" in openapi["components"]["securitySchemes"]  # /docs can still send one
    assert not any("security" in operation for _, _, operation in _operations(openapi))


def test_the_docs_page_runs_only_its_own_inline_script(sqlite_app):
    import base64
    import hashlib
    import re

    page = sqlite_app.get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = page.headers["content-security-policy"]
    assert f"'sha256-{digest}'" in policy and "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert sqlite_app.get("/redoc").status_code == 200
