"""Provider response bodies, parsed tolerantly: what a live API sends must never escape as a raw exception.

Providers add fields, send JSON `null` where the reference shows a string, send `3306` where it shows `"3306"`,
and grow their enums. `ProviderBody` models accept all of that: unknown fields are ignored, `null` in a field
that has a default becomes the default, numbers are accepted in string fields, and enum-like fields are plain
strings (an unknown value passes through verbatim; see each provider's results for how it is flagged). What
cannot be read at all (a required field missing or null, a list where an object belongs) becomes one clean
`upstream_error` naming the field, never the value, through `parse_body`.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError

__all__ = ["ProviderBody", "body_error", "parse_body"]

M = TypeVar("M", bound=BaseModel)


class ProviderBody(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    # The keys (names and aliases) of the fields with a default: a null there is dropped, so the default applies.
    null_defaults: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: set[str] = set()
        for name, spec in cls.model_fields.items():
            if not spec.is_required():
                keys.add(name)
                keys.update(a for a in (spec.alias, spec.validation_alias) if isinstance(a, str))
        cls.null_defaults = frozenset(keys)

    # One check per object rather than a validator per field: a read validates hundreds of fields (issue 23).
    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: object) -> object:
        if isinstance(data, dict) and None in data.values():
            defaults = cls.null_defaults
            return {k: v for k, v in data.items() if v is not None or k not in defaults}
        return data


def body_error(provider: str, label: str, what: str, detail: str, hint: str) -> PoolpilotError:
    """`provider` is the error model's provider id, `label` its name in prose."""
    return PoolpilotError(
        ErrorInfo(
            code="upstream_error",
            message=f"{label} answered {what} in a shape poolpilot cannot read ({detail})",
            hint=hint,
            provider=provider,
        )
    )


def parse_body(model: type[M], data: object, *, provider: str, label: str, what: str, hint: str) -> M:
    """Validate one provider body; a body that cannot be read is an `upstream_error` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        raise body_error(provider, label, what, f"{where}: {first['msg']}", hint) from None
