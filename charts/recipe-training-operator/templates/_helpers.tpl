{{/*
Names. Kubernetes names and label values stop at 63 characters, so every name is truncated there
(and a trailing "-" left by the cut is trimmed).
*/}}
{{- define "rto.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rto.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name derived from the full name with a suffix, still within 63 characters. */}}
{{- define "rto.suffixed" -}}
{{- $suffix := index . 1 }}
{{- $base := include "rto.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "rto.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods; never change between upgrades. */}}
{{- define "rto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rto.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Standard labels on every object (Kubernetes recommended labels + helm.sh/chart). */}}
{{- define "rto.labels" -}}
helm.sh/chart: {{ include "rto.chart" . }}
{{ include "rto.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chef-genius
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rto.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rto.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to the appVersion. */}}
{{- define "rto.imageRef" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* Leader election is on with several replicas (standby) or when asked for. */}}
{{- define "rto.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "rto.leaseName" -}}
{{- default (include "rto.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "rto.webhookSecretName" -}}
{{- include "rto.suffixed" (list . "webhook-cert") }}
{{- end }}

{{/* The operator serves the webhook at /<kopf handler id> (recipe_operator.settings.WEBHOOK_PATH). */}}
{{- define "rto.webhookPath" -}}
/validate-spec
{{- end }}

{{/* Where the Deployment mounts the webhook Secret. */}}
{{/* The names (DNS or IP) the webhook's serving certificate is for: the Service, and webhook.url's host. */}}
{{- define "rto.webhookCertNames" -}}
{{- $svc := include "rto.webhookServiceName" . }}
{{- $names := list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- if .Values.webhook.url }}
{{- $names = append $names (urlParse .Values.webhook.url).hostname }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/* The operator owns the webhook certificate unless cert-manager issues it. */}}
{{- define "rto.operatorOwnsWebhookCert" -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) }}true{{ end }}
{{- end }}

{{- define "rto.webhookCertDir" -}}
/etc/recipe-operator/webhook
{{- end }}

{{- define "rto.metricsServiceName" -}}
{{- include "rto.suffixed" (list . "metrics") }}
{{- end }}

{{- define "rto.webhookServiceName" -}}
{{- include "rto.suffixed" (list . "webhook") }}
{{- end }}

{{- define "rto.webhookHost" -}}
{{- printf "%s.%s.svc" (include "rto.webhookServiceName" .) .Release.Namespace }}
{{- end }}

{{/* Namespace of an optional monitoring object: its own setting or the release namespace. */}}
{{- define "rto.monitoringNamespace" -}}
{{- default .root.Release.Namespace .namespace }}
{{- end }}
