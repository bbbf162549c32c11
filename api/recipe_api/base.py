"""What every model of the API shares: camelCase aliases, no unknown fields, Kubernetes quantities.

The RecipeTrainingJob (`v1alpha1`, `status`), the trainer's config (`trainer_config`) and the
chart's values (`chart_values`) are all `ApiModel`s, so each is written, validated and turned into
a JSON schema the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# Kubernetes' quantity grammar (apimachinery resource.ParseQuantity) for requests and sizes: a
# non-negative number, then a binary-SI suffix, a decimal-SI suffix or an exponent. The number part
# is unambiguous (`\d+(\.\d*)?`, not `[0-9.]+` followed by more digits), so a failed match costs
# one pass over the string; the length is checked first anyway, and the CRD carries the same
# maxLength, so the API server refuses a longer value before anything here runs (issue 23: a
# backtracking pattern took an hour on a 1 MB value, on the operator's event loop).
QUANTITY_MAX_LENGTH = 64
QUANTITY_PATTERN = re.compile(r"\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?")


def _as_quantity(value: Any) -> Any:
    """Kubernetes quantities may be written as numbers (`cpu: 8`); keep them as strings."""
    if isinstance(value, bool):
        raise ValueError("must be a Kubernetes quantity such as 8, 500m or 64Gi")
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and len(value) > QUANTITY_MAX_LENGTH:
        raise ValueError(
            f"is {len(value)} characters long; a Kubernetes quantity such as 8, 500m or 64Gi has at "
            f"most {QUANTITY_MAX_LENGTH}"
        )
    if isinstance(value, str) and not QUANTITY_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write e.g. 8, 500m, 64Gi or 1.5")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_as_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "maxLength": QUANTITY_MAX_LENGTH}),
]
FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ApiModel(BaseModel):
    """The base of every API model: unknown fields rejected, camelCase aliases, to_manifest()."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        use_attribute_docstrings=False,
    )

    def to_manifest(self) -> dict[str, Any]:
        """camelCase, JSON-compatible dict: what lands in YAML, ConfigMaps and status patches."""
        return self.model_dump(by_alias=True, mode="json")
