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
| RECIPE_OPERATOR_LEADER_ELECTION_LEASE | "" | Lease name for active/standby replicas; empty = always active |
| RECIPE_OPERATOR_LEADER_ELECTION_NAMESPACE | "" | namespace of that Lease (default: the pod's own namespace) |
| RECIPE_OPERATOR_TERMINATION_TIMEOUT_SECONDS | 300 | how long an old gang may take to terminate before escalation |
| RECIPE_OPERATOR_WEBHOOK_ENABLED | false | serve the @kopf.on.validate admission webhook |
| RECIPE_OPERATOR_WEBHOOK_ADDRESS | 0.0.0.0 | address the webhook listens on (127.0.0.1 for a local operator) |
| RECIPE_OPERATOR_WEBHOOK_PORT | 9443 | the port the webhook listens on |
| RECIPE_OPERATOR_WEBHOOK_CERT_FILE | "" | PEM serving certificate (the chart's Secret, tls.crt) |
| RECIPE_OPERATOR_WEBHOOK_KEY_FILE | "" | its private key (tls.key) |
| RECIPE_OPERATOR_WEBHOOK_CERT_SECRET | "" | Secret (pod's namespace) where the operator keeps its own webhook certificate; empty = the files come from elsewhere (cert-manager) |
| RECIPE_OPERATOR_WEBHOOK_CERT_NAMESPACE | "" | namespace of that Secret (default: the pod's own namespace) |
| RECIPE_OPERATOR_WEBHOOK_CONFIGURATION | "" | ValidatingWebhookConfiguration whose caBundle the operator sets (with WEBHOOK_CERT_SECRET) |
| RECIPE_OPERATOR_WEBHOOK_DNS_NAMES | "" | comma-separated names (DNS or IP) the serving certificate is for |
| RECIPE_OPERATOR_WEBHOOK_CERT_VALIDITY_DAYS | 365 | life of a serving certificate (the CA lives ten times as long) |
| RECIPE_OPERATOR_WEBHOOK_CLIENT_CA_FILE | "" | PEM CA of the API server's client certificate; set: callers without one signed by it are refused |
| RECIPE_OPERATOR_ALLOWED_IMAGE_PREFIXES | "" | comma-separated prefixes spec.resources.image must start with; empty = any |
| RECIPE_OPERATOR_ALLOWED_CLAIMS | "" | comma-separated PVC names a job may mount (dataset and checkpoint); empty = any |
| RECIPE_OPERATOR_ALLOWED_PRIORITY_CLASSES | "" | comma-separated PriorityClasses a job may ask for; empty = any |

The chart owns the ValidatingWebhookConfiguration, so a dead or scaled operator never leaves one
behind. The certificate is cert-manager's (mounted; kopf re-reads the files when they change) or,
by default, the operator's own (webhook_certs.py): kept in a Secret every replica shares, written
into the files kopf serves, its CA injected into the configuration, renewed before it expires.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from recipe_api.validation import AdmissionPolicy

ENV_PREFIX = "RECIPE_OPERATOR_"
WEBHOOK_PATH = "/validate-spec"  # kopf serves a handler at /<handler id>; the chart's config points here
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    leader_election_lease: str = Field(
        "", description="Lease name for active/standby replicas; empty = this replica is always active."
    )
    leader_election_namespace: str = Field(
        "", description="Namespace of the Lease; empty = the pod's own namespace (or default)."
    )
    termination_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Seconds an old gang may take to terminate before its pods are force-deleted.",
    )
    webhook_enabled: bool = Field(False, description="Serve the validating admission webhook.")
    webhook_address: str = Field("0.0.0.0", min_length=1, description="Address the webhook listens on.")
    webhook_port: int = Field(9443, ge=1, le=65535, description="Port the webhook server listens on.")
    webhook_cert_file: str = Field("", description="PEM serving certificate of the webhook (tls.crt).")
    webhook_key_file: str = Field("", description="Private key of that certificate (tls.key).")
    webhook_cert_secret: str = Field(
        "", description="Secret where the operator keeps its own webhook certificate (empty: not managed)."
    )
    webhook_cert_namespace: str = Field(
        "", description="Namespace of that Secret; empty = the pod's own namespace (or default)."
    )
    webhook_configuration: str = Field(
        "", description="ValidatingWebhookConfiguration whose caBundle the operator keeps current."
    )
    webhook_dns_names: list[str] = Field(
        default_factory=list, description="Names (DNS or IP) of the webhook's serving certificate."
    )
    webhook_cert_validity_days: int = Field(
        365, ge=3, description="Days a serving certificate lives; the CA lives ten times as long."
    )
    webhook_client_ca_file: str = Field(
        "",
        description="CA (PEM) that signed the API server's client certificate for admission webhooks; "
        "when set, the webhook refuses every TLS client without a certificate it signed.",
    )
    allowed_image_prefixes: list[str] = Field(
        default_factory=list, description="Prefixes spec.resources.image must start with; empty = any."
    )
    allowed_claims: list[str] = Field(
        default_factory=list, description="PVCs a job may mount (dataset, checkpoint); empty = any."
    )
    allowed_priority_classes: list[str] = Field(
        default_factory=list, description="PriorityClasses a job may ask for; empty = any."
    )

    @field_validator(
        "namespaces",
        "webhook_dns_names",
        "allowed_image_prefixes",
        "allowed_claims",
        "allowed_priority_classes",
        mode="before",
    )
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @model_validator(mode="after")
    def _webhook_needs_a_certificate(self) -> Settings:
        if self.webhook_enabled and not (self.webhook_cert_file and self.webhook_key_file):
            raise ValueError(
                "webhook_enabled needs RECIPE_OPERATOR_WEBHOOK_CERT_FILE and RECIPE_OPERATOR_WEBHOOK_KEY_FILE "
                "(the chart mounts its webhook Secret and sets both)"
            )
        if self.webhook_cert_secret and not (self.webhook_configuration and self.webhook_dns_names):
            raise ValueError(
                "webhook_cert_secret needs RECIPE_OPERATOR_WEBHOOK_CONFIGURATION and RECIPE_OPERATOR_WEBHOOK_DNS_NAMES "
                "(the configuration whose caBundle to set, the names the certificate is for)"
            )
        return self

    @property
    def policy(self) -> AdmissionPolicy:
        """What the administrator allows jobs (enforced by the webhook and by every reconcile)."""
        return AdmissionPolicy(
            tuple(self.allowed_image_prefixes),
            tuple(self.allowed_claims),
            tuple(self.allowed_priority_classes),
        )

    @property
    def leader_election(self) -> bool:
        return bool(self.leader_election_lease)

    def lease_namespace(self) -> str:
        if self.leader_election_namespace:
            return self.leader_election_namespace
        return own_namespace()

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


def own_namespace() -> str:
    """The operator pod's namespace (its service account's), or default outside a pod."""
    if SERVICE_ACCOUNT_NAMESPACE_FILE.exists():
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip()
    return "default"


def env_names() -> set[str]:
    """Every environment variable the operator reads (the chart's test compares against it)."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}
