"""Initializer references: a registry id and the parameters given, written as ``"he_normal"`` or
``{"id": ..., "params": {...}}``; both parse into ``InitializerRef`` here and nowhere else, and the
registry's own rules check the parameters (a rule of one parameter is reported at params.<name>)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.domain.param_rules import ParamError
from app.domain.registry import REGISTRY, ParamValue, Recipe, format_param, label, normalize_params, recipe_of


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def known(catalogue: dict, what: str):
    def check(value: str) -> str:
        if value not in catalogue:
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(catalogue)}")
        return value

    return check


InitializerId = Annotated[str, Field(json_schema_extra={"enum": list(REGISTRY)})]


class InitializerRef(StrictModel):
    """One initializer choice: a registry id and the parameters given (checked by the registry's rules)."""

    id: InitializerId
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="numbers for most; the custom initializer's distribution and mode are "
        "strings and its clip_sigma may be null (GET /api/initializers lists each one's rules)")

    @field_validator("id")
    @classmethod
    def _known_id(cls, value: str) -> str:
        return known(REGISTRY, "initializer")(value)

    @model_validator(mode="after")
    def _params_are_valid(self) -> "InitializerRef":
        # The registry's own check: unknown names, non-finite values, minval >= maxval,
        # stddev <= 0, an unknown distribution ... A rule of one parameter is reported at params.<name>.
        try:
            self.params = normalize_params(self.id, self.params)
        except ParamError as error:
            if error.param is None:
                raise ValueError(str(error)) from None
            raise ValidationError.from_exception_data("InitializerRef", [InitErrorDetails(
                type=PydanticCustomError("initializer_param", "{message}", {"message": str(error)}),
                loc=("params", error.param), input=self.params.get(error.param))]) from None
        return self

    @property
    def key(self) -> str:
        """One key per choice ("random_normal(stddev=0.01)"): the same id with two stddevs is two groups."""
        if not self.params:
            return self.id
        return f"{self.id}({','.join(f'{name}={format_param(self.params[name])}' for name in sorted(self.params))})"

    @property
    def label(self) -> str:
        return label(self.id, self.params)

    @property
    def recipe(self) -> Recipe:
        return recipe_of(self.id, self.params)

    @property
    def rescale_on_data(self) -> bool:
        return REGISTRY[self.id].rescale_on_data


def as_ref(value: Any) -> Any:
    """An initializer may be written as its bare id."""
    return {"id": value} if isinstance(value, str) else value


Initializer = Annotated[InitializerRef, BeforeValidator(as_ref), WithJsonSchema({
    "anyOf": [{"type": "string", "enum": list(REGISTRY)}, InitializerRef.model_json_schema()]})]
