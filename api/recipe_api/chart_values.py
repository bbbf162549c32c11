"""The Helm chart's values, described once: type, default and meaning of every key.

`chart_files` (`make chart-values`) writes from these models the chart's values.yaml,
values.schema.json and the values table of its README.md; tests/chart checks that the three are
current. Like the RecipeTrainingJob (`v1alpha1`), every model is an `ApiModel`: camelCase keys,
unknown keys refused. The Kubernetes types the values pass through are in `chart_kubernetes`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import ApiModel
from .chart_kubernetes import (
    Affinity,
    Capabilities,
    EnvVar,
    IssuerRef,
    LocalObjectReference,
    PassThrough,
    PodSecurityContext,
    RelabelConfig,
    Resources,
    SeccompProfile,
    SecurityContext,
    Toleration,
    TopologySpreadConstraint,
)

DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
Duration = Annotated[str, Field(pattern=DURATION)]
Port = Annotated[int, Field(ge=1, le=65535)]
Digest = Annotated[str, Field(pattern=r"^(sha256:[a-f0-9]{64})?$")]
Labels = dict[str, str]
ALERTS = Literal[
    "RecipeTrainingJobFailed", "RecipeTrainingJobRestartingRepeatedly", "RecipeTrainingStalled",
    "RecipeTrainingValidationLossRising", "RecipeOperatorDown", "RecipeOperatorReconcileErrors",
]  # fmt: skip


class Crds(ApiModel):
    install: bool = Field(
        True,
        description="Install the RecipeTrainingJob CustomResourceDefinition with the chart. Turn it off when "
        "the CRD is managed elsewhere (GitOps, `kubectl apply -f crds/`). The CRD carries "
        "`helm.sh/resource-policy: keep`: `helm uninstall` never deletes it, so users' jobs survive.",
    )
    annotations: Labels = Field({}, description="Extra annotations on the CRD (besides the keep policy).")


class Image(ApiModel):
    repository: Annotated[str, Field(min_length=1)] = Field(
        "ghcr.io/chefgenius/recipe-training-operator",
        description="Operator image repository (built from operator/Dockerfile).",
    )
    tag: str = Field("", description="Operator image tag. Default: the chart's appVersion.")
    digest: Digest = Field(
        "", description="Image digest (`sha256:...`); when set it pins the image and wins over the tag."
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )


class TrainerImage(ApiModel):
    repository: Annotated[str, Field(min_length=1)] = Field(
        "ghcr.io/chefgenius/recipe-trainer",
        description="Trainer image repository (built from trainer_image/Dockerfile). The operator uses it for "
        "every job whose `spec.resources.image` is empty (RECIPE_OPERATOR_TRAINER_IMAGE).",
    )
    tag: str = Field("", description="Trainer image tag. Default: the chart's appVersion.")
    digest: Digest = Field("", description="Trainer image digest (`sha256:...`); wins over the tag when set.")


class Trainer(ApiModel):
    image: TrainerImage = Field(default_factory=TrainerImage, description="The trainer image.")


class Operator(ApiModel):
    progress_interval_seconds: Annotated[int, Field(ge=1)] = Field(
        30,
        description="How often, in seconds, the operator copies rank 0's metrics into each job's "
        "`status.progress`.",
    )
    metrics_port: Port = Field(8080, description="Port of the operator's Prometheus endpoint (`/metrics`).")
    health_port: Port = Field(
        8081,
        description="Port of the operator's health endpoint (`/healthz`), used by the liveness and readiness "
        "probes.",
    )
    termination_timeout_seconds: Annotated[int, Field(ge=1)] = Field(
        300,
        description="Seconds an old gang (a deleted attempt's Job) may take to terminate before the operator "
        "force-deletes its pods (pods on a lost node are never confirmed deleted); after twice this it "
        "orphans them so the next attempt can start.",
    )
    extra_env: list[EnvVar] = Field(
        [], description="Extra environment variables for the operator container (list of EnvVar)."
    )
    extra_args: list[str] = Field(
        [], description="Extra arguments for `recipe-operator` (e.g. `[--verbose]` for debug logging)."
    )


class LeaderElection(ApiModel):
    enabled: bool = Field(
        True,
        description="Elect a leader on a coordination.k8s.io Lease (always on when replicaCount > 1): only the "
        "Lease holder reconciles jobs, so two operators never act on one job, even for the seconds two pods "
        "overlap in a rolling update. Off: one replica only, updated with the Recreate strategy (switching it "
        "on or off later needs the Deployment recreated: helm cannot change a strategy's type in place).",
    )
    lease_name: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$", max_length=253)] = Field(
        "", description="Name of the Lease (in the release namespace). Default: the release's full name."
    )


class ServiceAccount(ApiModel):
    create: bool = Field(True, description="Create the operator's ServiceAccount.")
    name: str = Field(
        "", description="ServiceAccount name. Default: the full name when created, `default` otherwise."
    )
    annotations: Labels = Field(
        {}, description="Annotations on the ServiceAccount (e.g. cloud workload identity)."
    )
    automount_service_account_token: bool = Field(
        True,
        description="Mount the ServiceAccount token: the operator talks to the Kubernetes API, so keep it true.",
    )


class Rbac(ApiModel):
    create: bool = Field(
        True,
        description="Create the (Cluster)Roles and bindings the operator needs. Off: bind them yourself.",
    )


class Probe(ApiModel):
    enabled: bool = Field(True, description="Run this probe on `/healthz` (kopf's health endpoint).")
    initial_delay_seconds: Annotated[int, Field(ge=0)] = Field(
        10, description="Seconds before the first probe."
    )
    period_seconds: Annotated[int, Field(ge=1)] = Field(20, description="Seconds between probes.")
    timeout_seconds: Annotated[int, Field(ge=1)] = Field(5, description="Seconds a probe may take.")
    failure_threshold: Annotated[int, Field(ge=1)] = Field(
        3, description="Failed probes in a row before the probe acts."
    )


class Service(ApiModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Type of the Service in front of the operator's metrics port."
    )
    port: Port = Field(8080, description="Port of the metrics Service.")
    annotations: Labels = Field({}, description="Annotations on the metrics Service.")


class _Monitor(ApiModel):
    """What the ServiceMonitor and the PodMonitor (Prometheus operator) share."""

    enabled: bool = False
    namespace: str = Field("", description="Namespace of the monitor. Default: the release namespace.")
    labels: Labels = Field(
        {}, description="Extra labels, e.g. `release: kube-prometheus-stack` so your Prometheus selects it."
    )
    interval: Duration = Field("30s", description="Scrape interval.")
    scrape_timeout: Duration = Field("10s", description="Scrape timeout (must not exceed the interval).")
    relabelings: list[RelabelConfig] = []
    metric_relabelings: list[RelabelConfig] = Field(
        [], description="Relabelings applied to the scraped samples."
    )


class ServiceMonitor(_Monitor):
    enabled: bool = Field(
        False,
        description="Create a ServiceMonitor (Prometheus operator) that scrapes the operator's `/metrics`.",
    )
    relabelings: list[RelabelConfig] = Field(
        [],
        description="Relabelings applied to the target before scraping (Prometheus operator RelabelConfig list).",
    )
    honor_labels: bool = Field(
        True,
        description="Keep the operator's own `namespace` label (the job's namespace) instead of renaming it to "
        "`exported_namespace`; the Operator dashboard's namespace filter relies on it.",
    )


class PodMonitor(_Monitor):
    enabled: bool = Field(
        False,
        description="Create a PodMonitor (Prometheus operator) that scrapes the trainer pods of every job: pods "
        "with the operator's trainer labels, on their port named `metrics`. The pod label "
        "`training.chefgenius.io/job-name` becomes the `rtj` label the dashboards and alerts use.",
    )
    relabelings: list[RelabelConfig] = Field(
        [], description="Extra relabelings applied after the chart's own (RelabelConfig list)."
    )
    rank0_only: bool = Field(
        True,
        description="Scrape only pod 0 of each job (global rank 0 serves `/metrics`; other pods expose nothing).",
    )


class PrometheusRule(ApiModel):
    enabled: bool = Field(
        False,
        description="Create a PrometheusRule with the training and operator alerts (see docs/install.md).",
    )
    namespace: str = Field("", description="Namespace of the PrometheusRule. Default: the release namespace.")
    labels: Labels = Field(
        {}, description="Extra labels, e.g. `release: kube-prometheus-stack` so your Prometheus selects it."
    )
    additional_alert_labels: Labels = Field(
        {}, description="Labels added to every alert (e.g. `team: ml-platform` for Alertmanager routing)."
    )
    critical_severity: Annotated[str, Field(min_length=1)] = Field(
        "critical",
        description="Severity label of the alerts that need a person now (failed job, operator down).",
    )
    warning_severity: Annotated[str, Field(min_length=1)] = Field(
        "warning", description="Severity label of the other alerts."
    )
    runbook_base_url: str = Field(
        "https://github.com/chefgenius/chef-genius/blob/main/docs/install.md#",
        alias="runbookBaseURL",
        description="Base of each alert's `runbook_url` annotation (the alert's name, lower case, is appended): "
        "the sections of docs/install.md that say what each alert means and what to do.",
    )
    disabled_alerts: Annotated[list[ALERTS], Field(json_schema_extra={"uniqueItems": True})] = Field(
        [], description="Alert names to leave out, e.g. `[RecipeTrainingValidationLossRising]`."
    )
    restart_threshold: Annotated[int, Field(ge=1)] = Field(
        3, description="Gang restarts within `restartWindow` that fire RecipeTrainingJobRestartingRepeatedly."
    )
    restart_window: Duration = Field("1h", description="Window over which restarts are counted.")
    stalled_minutes: Annotated[int, Field(ge=1)] = Field(
        20,
        description="Minutes without a new optimizer step (while the job still has steps to go) before "
        "RecipeTrainingStalled fires. Keep it above the longest validation + checkpoint pause.",
    )
    validation_loss_rise_fraction: Annotated[float, Field(gt=0)] = Field(
        0.05,
        description="RecipeTrainingValidationLossRising fires when the latest validation loss stays this "
        "fraction above the best one (0.05 = 5 % worse)...",
    )
    validation_loss_rise_for: Duration = Field("1h", description="...for this long.")
    operator_down_for: Duration = Field(
        "5m",
        description="How long the operator's metrics target must be down or missing before RecipeOperatorDown fires.",
    )
    reconcile_errors_for: Duration = Field(
        "15m",
        description="How long reconcile errors must keep happening before RecipeOperatorReconcileErrors fires.",
    )


class Dashboards(ApiModel):
    enabled: bool = Field(
        False,
        description="Create ConfigMaps with the Training and Operator dashboards for the Grafana sidecar "
        '(kube-prometheus-stack\'s Grafana picks up ConfigMaps labelled `grafana_dashboard: "1"`).',
    )
    label: Annotated[str, Field(min_length=1)] = Field(
        "grafana_dashboard", description="Label the Grafana sidecar looks for."
    )
    label_value: str = Field("1", description="Value of that label.")
    namespace: str = Field(
        "",
        description="Namespace of the dashboard ConfigMaps. Default: the release namespace. Set it to Grafana's "
        "namespace when its sidecar does not search all namespaces.",
    )
    folder: str = Field(
        "",
        description="Grafana folder for the dashboards (written to the `grafana_folder` annotation, which the "
        "sidecar honours when its `folderAnnotation` is set to that name). Empty: no annotation.",
    )
    annotations: Labels = Field({}, description="Extra annotations on the dashboard ConfigMaps.")


class Grafana(ApiModel):
    dashboards: Dashboards = Field(
        default_factory=Dashboards, description="Dashboards for the Grafana sidecar."
    )


class CertManager(ApiModel):
    enabled: bool = Field(
        False,
        description="Let cert-manager issue and renew the webhook certificate (a Certificate in the release "
        "namespace, its CA injected into the webhook configuration) instead of a chart-generated Secret.",
    )
    issuer_ref: IssuerRef = Field(
        default_factory=IssuerRef,
        description="Issuer of that Certificate (`{name, kind, group}`). Empty: the chart creates a self-signed Issuer.",
    )


class Webhook(ApiModel):
    enabled: bool = Field(
        False,
        description="Run the operator's validating admission webhook: semantic checks (e.g. global batch "
        "divisible by world size) reject a bad RecipeTrainingJob at `kubectl apply` instead of ending it in "
        "Failed. The chart renders the ValidatingWebhookConfiguration (CREATE and UPDATE only: a job can always "
        "be deleted). Its certificate is cert-manager's (`certManager.enabled`) or, by default, the operator's own: "
        "it keeps a CA and a serving certificate in a Secret, sets the configuration's caBundle and renews both "
        "before they expire, without a restart; `helm template` then renders the same every time (Argo CD, Flux: "
        "ignore the caBundle field in their diff).",
    )
    port: Port = Field(9443, description="Port the webhook server listens on in the operator pod.")
    failure_policy: Literal["Fail", "Ignore"] = Field(
        "Fail",
        description="What the API server does when the webhook cannot be reached (no operator replica running): "
        "`Fail` refuses creates and spec edits of RecipeTrainingJobs until one is back (deletes always work); "
        "`Ignore` admits them, and the operator's own validation still ends a bad job in Failed.",
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=30)] = Field(
        10, description="Seconds the API server waits for the webhook (1-30)."
    )
    url: Annotated[str, Field(pattern=r"^(https://.+)?$")] = Field(
        "",
        description="Call the webhook at this HTTPS base URL instead of through its Service, e.g. "
        "`https://127.0.0.1:9443` for an operator running as a local process beside a local control plane "
        "(`make cluster`). The operator's certificate then also names its host.",
    )
    cert_validity_days: Annotated[int, Field(ge=3)] = Field(
        365,
        description="Days the operator's serving certificate lives (renewed with a third of it left); its CA "
        "lives ten times as long. Unused with cert-manager.",
    )
    cert_manager: CertManager = Field(
        default_factory=CertManager, description="cert-manager instead of a generated certificate."
    )
    client_ca_config_map: str = Field(
        "",
        description="A ConfigMap (release namespace) whose `ca.crt` is the CA of the client certificate the "
        "API server presents to admission webhooks (its AdmissionConfiguration's kubeConfigFile). Set: the "
        "webhook requires that client certificate and refuses every other caller in the TLS handshake. Empty: "
        "any client that reaches the port may post reviews (they are only validated, never acted on).",
    )


NAMESPACE = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class Policy(ApiModel):
    """Creating a RecipeTrainingJob creates pods (docs/security.md): these lists narrow what a job may
    ask for. Empty: anything. The operator checks them at admission (with the webhook on: a one-line
    refusal naming the field) and at every reconcile (a job that asks for more ends Failed with
    InvalidSpec, also one already running when a list is narrowed)."""

    allowed_image_prefixes: list[Annotated[str, Field(min_length=1)]] = Field(
        [],
        description="Prefixes `spec.resources.image` must start with, e.g. `[registry.example.com/ml/]`. "
        "A job without an image runs the chart's trainer image, which is always allowed.",
    )
    allowed_claims: list[Annotated[str, Field(min_length=1)]] = Field(
        [],
        description="PersistentVolumeClaims a job may mount (`spec.dataset.volume.claimName`, "
        "`spec.checkpoint.volume.claimName`); the claim the operator creates for a job is always allowed.",
    )
    allowed_priority_classes: list[Annotated[str, Field(min_length=1)]] = Field(
        [], description="PriorityClasses a job may ask for (`spec.resources.priorityClassName`)."
    )


class PrometheusPeer(ApiModel):
    namespace_selector: PassThrough = Field(
        {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        description="Namespaces Prometheus runs in (a LabelSelector).",
    )
    pod_selector: PassThrough = Field(
        {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        description="The Prometheus pods there (a LabelSelector).",
    )


class NetworkPolicy(ApiModel):
    enabled: bool = Field(
        False,
        description="Render NetworkPolicies that let only this traffic in: trainer pod to trainer pod of the same "
        "namespace on every TCP port (the DeepSpeed rendezvous and NCCL, whose socket transport listens on "
        "ephemeral ports), the operator and Prometheus to the trainers' `metrics` port, Prometheus to the "
        "operator's metrics port, and the API server to the webhook port. Trainer policies go into each of "
        "`watchNamespaces`, which must then be set. Egress stays open (DNS, model downloads).",
    )
    prometheus: PrometheusPeer = Field(
        default_factory=PrometheusPeer, description="Where the Prometheus that scrapes the metrics runs."
    )
    api_server_cidrs: list[str] = Field(
        [],
        description="Source CIDRs of the API server's calls to the webhook port. Empty: any source may reach that "
        "one port (the API server is no pod, and its address differs between clusters).",
    )


class Values(ApiModel):
    """Default values for recipe-training-operator. Every key is documented here and typed in
    values.schema.json, which rejects unknown keys: a typo such as `--set serviceMonitor.enable=true`
    fails the install instead of being ignored."""

    name_override: Annotated[str, Field(max_length=63)] = Field(
        "", description="Override the chart name used in resource names (`<release>-<nameOverride>`)."
    )
    fullname_override: Annotated[str, Field(max_length=63)] = Field(
        "",
        description="Override the full resource name prefix (default `<release>-recipe-training-operator`, or "
        "the release name when it already contains the chart name). Truncated to 63 characters.",
    )
    common_labels: Labels = Field({}, description="Labels added to every object the chart renders.")
    global_: PassThrough = Field(
        {},
        alias="global",
        description="Helm's global values (unused by this chart; accepted so that the chart works as a subchart).",
        json_schema_extra={"x-not-in-values-yaml": True},
    )
    crds: Crds = Field(default_factory=Crds, description="The RecipeTrainingJob CRD.")
    watch_namespaces: Annotated[list[NAMESPACE], Field(json_schema_extra={"uniqueItems": True})] = Field(
        [],
        description="Namespaces the operator watches. Empty: every namespace, with a ClusterRole. With names: the "
        "operator only sees RecipeTrainingJobs there and gets a Role (and RoleBinding) in each one; only what "
        "kopf itself needs stays cluster-wide (reading CRDs, and the webhook configuration when enabled).",
    )
    replica_count: Annotated[int, Field(ge=0)] = Field(
        1,
        description="Number of operator replicas. Above 1, leader election on a Lease is turned on: one replica "
        "reconciles, the others stand by (they only watch and serve the webhook) and one takes over within 15 s "
        "when the leader disappears (at once when it shuts down cleanly).",
    )
    image: Image = Field(default_factory=Image, description="The operator image.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        [],
        description="Secrets for pulling the operator image from a private registry (`[{name: regcred}]`).",
    )
    trainer: Trainer = Field(default_factory=Trainer, description="The trainer, as the operator starts it.")
    operator: Operator = Field(default_factory=Operator, description="The operator process.")
    leader_election: LeaderElection = Field(default_factory=LeaderElection, description="Leader election.")
    service_account: ServiceAccount = Field(
        default_factory=ServiceAccount, description="The operator's ServiceAccount."
    )
    rbac: Rbac = Field(default_factory=Rbac, description="RBAC objects.")
    resources: Resources = Field(
        Resources(requests={"cpu": "50m", "memory": "128Mi"}, limits={"memory": "512Mi"}),
        description="CPU and memory for the operator container (the operator is light: it watches and patches).",
    )
    pod_security_context: PodSecurityContext = Field(
        PodSecurityContext(
            run_as_non_root=True, run_as_user=10001, run_as_group=10001, fs_group=10001,
            seccomp_profile=SeccompProfile(type="RuntimeDefault"),
        ),
        description="Pod-level security context: run as a non-root user (10001, the user operator/Dockerfile "
        "creates) with the RuntimeDefault seccomp profile.",
    )  # fmt: skip
    security_context: SecurityContext = Field(
        SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True, run_as_non_root=True,
            capabilities=Capabilities(drop=["ALL"]), seccomp_profile=SeccompProfile(type="RuntimeDefault"),
        ),
        description="Container security context: read-only root filesystem, no privilege escalation, no "
        "capabilities.",
    )  # fmt: skip
    liveness_probe: Probe = Field(
        default_factory=Probe,
        description="Restart the operator container when `/healthz` stops answering (kopf's liveness endpoint).",
    )
    readiness_probe: Probe = Field(
        Probe(initial_delay_seconds=5, period_seconds=10),
        description="Mark the pod ready once `/healthz` answers (used by the metrics and webhook Services); "
        "unready after failureThreshold failures.",
    )
    pod_annotations: Labels = Field({}, description="Annotations on the operator pods.")
    pod_labels: Labels = Field({}, description="Extra labels on the operator pods.")
    deployment_annotations: Labels = Field({}, description="Annotations on the operator Deployment.")
    node_selector: Labels = Field({}, description="Node selector for the operator pods.")
    tolerations: list[Toleration] = Field([], description="Tolerations for the operator pods.")
    affinity: Affinity = Field(
        default_factory=Affinity,
        description="Affinity for the operator pods. With several replicas consider a pod anti-affinity by hostname.",
    )
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(
        [], description="Topology spread constraints for the operator pods."
    )
    priority_class_name: str = Field("", description="PriorityClass of the operator pods.")
    service: Service = Field(default_factory=Service, description="The Service in front of the metrics port.")
    service_monitor: ServiceMonitor = Field(
        default_factory=ServiceMonitor, description="Scraping the operator."
    )
    pod_monitor: PodMonitor = Field(default_factory=PodMonitor, description="Scraping the trainer pods.")
    prometheus_rule: PrometheusRule = Field(default_factory=PrometheusRule, description="The alerts.")
    grafana: Grafana = Field(default_factory=Grafana, description="Grafana.")
    webhook: Webhook = Field(default_factory=Webhook, description="The validating admission webhook.")
    policy: Policy = Field(
        default_factory=Policy,
        description="What a RecipeTrainingJob may ask for (images, claims, priorities).",
    )
    network_policy: NetworkPolicy = Field(
        default_factory=NetworkPolicy,
        description="Optional NetworkPolicies for the trainers and the operator.",
    )
