"""Types every part of the API shares: ids, plain text, error answers, numbers that may be NaN."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# SQLite hands datetimes back without a zone; every stored time is UTC.
UtcDatetime = Annotated[datetime, AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=timezone.utc))]

# Database ids: 32-bit on PostgreSQL, so anything larger is a 422, not a 500.
EntityId = Annotated[int, Field(ge=1, le=2**31 - 1)]


# Text a client sends (a study's name, a filter, a header) never holds control characters: U+0000
# cannot be stored by PostgreSQL at all, and none belongs in a one-line name. The pattern says so in
# the OpenAPI schema; the validator answers with a readable 422.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
CONTROL_MESSAGE = "control characters (U+0000-U+001F, U+007F-U+009F) are not allowed"


def _no_control_characters(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


# Text that must show something: a name of spaces alone is an invisible, unclickable link.
VISIBLE_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"


def _visible(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain a visible character, not only spaces")
    return value


def plain_text(min_length: int | None = None, max_length: int | None = None, visible: bool = False) -> Any:
    """Every free-text field and parameter of a request: a str without control characters (and, with
    ``visible``, not only whitespace). Its length rule sits on the str itself, before the check, so a
    422 counts characters (pydantic counts a constraint placed after a validator in "items")."""
    checks = (AfterValidator(_no_control_characters),) + ((AfterValidator(_visible),) if visible else ())
    pattern = VISIBLE_TEXT_PATTERN if visible else PLAIN_TEXT_PATTERN
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), *checks,
                     Field(json_schema_extra={"pattern": pattern})]


def plain_json(data: Any, model: str) -> Any:
    """A JSON request body, checked before a model sees it: no string (or object key) anywhere may hold
    a control character (422 naming each place), and a number written with an integral fraction (``3.0``)
    is the integer it equals: JSON Schema's ``integer`` accepts it, so the API does too."""
    problems: list[InitErrorDetails] = []

    def walk(value: Any, loc: tuple) -> Any:
        if isinstance(value, str):
            if CONTROL_CHARACTERS.search(value):
                problems.append(InitErrorDetails(type=PydanticCustomError("control_character", CONTROL_MESSAGE),
                                                 loc=loc, input=value))
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**63:
            return int(value)
        if isinstance(value, list):
            return [walk(item, (*loc, index)) for index, item in enumerate(value)]
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and CONTROL_CHARACTERS.search(key):
                    problems.append(InitErrorDetails(type=PydanticCustomError("control_character", CONTROL_MESSAGE),
                                                     loc=(*loc, key), input=key))
            return {key: walk(item, (*loc, key)) for key, item in value.items()}
        return value

    cleaned = walk(data, ())
    if problems:
        raise ValidationError.from_exception_data(model, problems)
    return cleaned


class ErrorMessage(BaseModel):
    detail: str


# Responses every write or lookup may give besides its success, for the OpenAPI schema.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "missing or invalid bearer token (when INITLAB_API_TOKEN is set)"},
    503: {"model": ErrorMessage, "description": "database or broker temporarily unavailable; retry"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorMessage, "description": "no such study or run"}}


NON_FINITE = ["NaN", "Infinity", "-Infinity"]


NUMBER_KEYS = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
NON_FINITE_STRING = {"type": "string", "enum": NON_FINITE}


def allow_non_finite(schema: Any) -> None:
    """Where ``schema`` (in place, not through $refs) says "number", say "number or NaN/±Infinity as a string"."""
    if isinstance(schema, list):
        for item in schema:
            allow_non_finite(item)
        return
    if not isinstance(schema, dict):
        return
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            branches = []
            for branch in schema[key]:
                if isinstance(branch, dict) and branch.get("type") == "number" and set(branch) <= set(NUMBER_KEYS):
                    branches += [branch, dict(NON_FINITE_STRING)]
                else:
                    allow_non_finite(branch)
                    branches.append(branch)
            schema[key] = branches
    if schema.get("type") == "number":
        number = {key: schema.pop(key) for key in NUMBER_KEYS if key in schema}
        schema["anyOf"] = [number, dict(NON_FINITE_STRING)]
        return
    for key in ("allOf", "items", "prefixItems", "additionalProperties"):
        allow_non_finite(schema.get(key))
    for key in ("properties", "patternProperties"):
        for value in (schema.get(key) or {}).values():
            allow_non_finite(value)


class Numbers(BaseModel):
    """Floats may be NaN or Inf (a diverged run); JSON carries them as "NaN"/"Infinity", and the
    model's JSON schema says so: every number of its own fields may be one of those strings."""

    model_config = ConfigDict(ser_json_inf_nan="strings", from_attributes=True)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        schema = handler(core_schema)
        for prop in handler.resolve_ref_schema(schema).get("properties", {}).values():
            allow_non_finite(prop)
        return schema
