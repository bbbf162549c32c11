"""Operator settings, read once from environment variables.

The Helm chart sets exactly these variables (values.yaml -> Deployment env), so the names
are part of the chart's contract: rename one here and the chart must follow.

| variable | default | meaning |
| --- | --- | --- |
| RECIPE_OPERATOR_NAMESPACES | "" | comma-separated namespaces to watch; empty = all namespaces |
| RECIPE_OPERATOR_TRAINER_IMAGE | ghcr.io/chefgenius/recipe-trainer:latest | image when spec.resources.image is null |
| RECIPE_OPERATOR_METRICS_PORT | 8080 | the operator's own Prometheus /metrics |
| RECIPE_OPERATOR_HEALTH_PORT | 8081 | kopf's liveness endpoint, served at /healthz |
| RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS | 30 | how often rank 0's /metrics is mirrored into status.progress |
| RECIPE_OPERATOR_PEERING | "" | kopf peering object name for active/standby HA; empty = standalone |
| RECIPE_OPERATOR_WEBHOOK_ENABLED | false | serve the @kopf.on.validate admission webhook |
| RECIPE_OPERATOR_WEBHOOK_HOST | "" | the Service DNS name the API server calls the webhook at |
| RECIPE_OPERATOR_WEBHOOK_PORT | 9443 | the port the webhook listens on |

When the webhook is enabled kopf manages the ValidatingWebhookConfiguration named after the
CRD (recipetrainingjobs.training.chefgenius.io) with its self-signed certificate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator
from recipe_api.v1alpha1 import API_GROUP, PLURAL

ENV_PREFIX = "RECIPE_OPERATOR_"
WEBHOOK_CONFIGURATION_NAME = f"{PLURAL}.{API_GROUP}"


class Settings(BaseModel):
    """Every knob of the operator; field `x` comes from RECIPE_OPERATOR_<X upper-cased>."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty = all namespaces (kopf -A)."
    )
    trainer_image: str = Field(
        "ghcr.io/chefgenius/recipe-trainer:latest",
        min_length=1,
        description="Trainer image used when a job's spec.resources.image is null.",
    )
    metrics_port: int = Field(
        8080, ge=0, le=65535, description="Port of the operator's /metrics; 0 = not served."
    )
    health_port: int = Field(8081, ge=1, le=65535, description="Port of kopf's liveness /healthz.")
    progress_interval_seconds: float = Field(
        30.0, gt=0, description="Seconds between reads of rank 0's /metrics into status.progress."
    )
    peering: str = Field("", description="kopf peering name for active/standby; empty = standalone.")
    webhook_enabled: bool = Field(False, description="Serve the validating admission webhook.")
    webhook_host: str = Field("", description="Service DNS name of the webhook (used in its config).")
    webhook_port: int = Field(9443, ge=1, le=65535, description="Port the webhook server listens on.")
    # Not a chart setting: lets behaviour tests and benchmarks point the progress reader at a
    # local endpoint instead of a pod IP (kmock has no pods with reachable IPs).
    metrics_host_override: str = Field(
        "", description="Read rank 0's /metrics at this host instead of the pod IP (tests only)."
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @property
    def standalone(self) -> bool:
        return not self.peering

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read RECIPE_OPERATOR_* variables; unset ones keep their defaults."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        return cls.model_validate(values)


def env_names() -> set[str]:
    """Every environment variable the operator reads (the chart's test compares against it)."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}
