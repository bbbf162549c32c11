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

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def _as_quantity(value: Any) -> Any:
    """Kubernetes quantities may be written as numbers (`cpu: 8`); keep them as strings."""
    if isinstance(value, bool):
        raise ValueError("must be a Kubernetes quantity such as 8, 500m or 64Gi")
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write e.g. 8, 500m, 64Gi")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_as_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
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
