"""The Kubernetes types the chart's values pass through (securityContext, resources, tolerations...).

Typed field by field so values.schema.json rejects a misspelt key inside them too; unset fields are
left out of values.yaml and of the rendered objects. The API server validates what is only a
pass-through dict here (`PassThrough`: an affinity term, a label selector).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .base import ApiModel

PassThrough = dict[str, Any]  # a Kubernetes object the API server validates


class KubernetesObject(ApiModel):
    """A Kubernetes type passed through to the rendered objects; unset fields are left out."""


class SeccompProfile(KubernetesObject):
    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    localhost_profile: str | None = None


class SeLinuxOptions(KubernetesObject):
    level: str | None = None
    role: str | None = None
    type: str | None = None
    user: str | None = None


class Capabilities(KubernetesObject):
    add: list[str] | None = None
    drop: list[str] | None = None


class Sysctl(KubernetesObject):
    name: str
    value: str


class PodSecurityContext(KubernetesObject):
    run_as_non_root: bool | None = None
    run_as_user: Annotated[int, Field(ge=0)] | None = None
    run_as_group: Annotated[int, Field(ge=0)] | None = None
    fs_group: Annotated[int, Field(ge=0)] | None = None
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = None
    supplemental_groups: list[Annotated[int, Field(ge=0)]] | None = None
    seccomp_profile: SeccompProfile | None = None
    se_linux_options: SeLinuxOptions | None = Field(None, alias="seLinuxOptions")
    app_armor_profile: SeccompProfile | None = None
    sysctls: list[Sysctl] | None = None


class SecurityContext(KubernetesObject):
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    run_as_non_root: bool | None = None
    run_as_user: Annotated[int, Field(ge=0)] | None = None
    run_as_group: Annotated[int, Field(ge=0)] | None = None
    privileged: bool | None = None
    capabilities: Capabilities | None = None
    seccomp_profile: SeccompProfile | None = None
    se_linux_options: SeLinuxOptions | None = Field(None, alias="seLinuxOptions")
    app_armor_profile: SeccompProfile | None = None
    proc_mount: Literal["Default", "Unmasked"] | None = None


Amount = Annotated[str, Field(pattern=r"^[0-9.]+[a-zA-Z]*$")] | Annotated[float, Field(ge=0)]


class ResourceClaim(KubernetesObject):
    name: str | None = None
    request: str | None = None


class Resources(KubernetesObject):
    requests: dict[str, Amount] | None = None
    limits: dict[str, Amount] | None = None
    claims: list[ResourceClaim] | None = None


class Toleration(KubernetesObject):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Affinity(KubernetesObject):
    node_affinity: PassThrough | None = None
    pod_affinity: PassThrough | None = None
    pod_anti_affinity: PassThrough | None = None


class TopologySpreadConstraint(KubernetesObject):
    max_skew: Annotated[int, Field(ge=1)]
    topology_key: str
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: PassThrough | None = None
    match_label_keys: list[str] | None = None
    min_domains: Annotated[int, Field(ge=1)] | None = None
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    node_taints_policy: Literal["Honor", "Ignore"] | None = None


class LocalObjectReference(KubernetesObject):
    name: Annotated[str, Field(min_length=1)]


class EnvVar(KubernetesObject):
    name: Annotated[str, Field(min_length=1)]
    value: str | None = None
    value_from: PassThrough | None = None


class RelabelConfig(KubernetesObject):
    """A Prometheus operator RelabelConfig."""

    source_labels: list[str] | None = None
    separator: str | None = None
    target_label: str | None = None
    regex: str | None = None
    modulus: Annotated[int, Field(ge=1)] | None = None
    replacement: str | None = None
    action: (
        Literal[
            "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "Labelmap",
            "labeldrop", "Labeldrop", "labelkeep", "Labelkeep", "lowercase", "Lowercase", "uppercase",
            "Uppercase", "keepequal", "Keepequal", "dropequal", "Dropequal",
        ]
        | None
    ) = None  # fmt: skip


class IssuerRef(KubernetesObject):
    name: str | None = None
    kind: str | None = None
    group: str | None = None
