{{/* Names and labels shared by every template. */}}

{{- define "prompt-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prompt-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "prompt-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "prompt-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "prompt-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prompt-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "prompt-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "prompt-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "prompt-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The operator's rights on namespaced resources: in the ClusterRole when it
watches every namespace, else in a Role in each watched one.
*/}}
{{- define "prompt-operator.namespacedRules" -}}
# Watch Prompts (kopf) and read one again when a peer's key frees up.
- apiGroups: [prompts.dev]
  resources: [prompts]
  verbs: [get, list, watch]
# Conditions, revision and delivery; never spec or metadata.
- apiGroups: [prompts.dev]
  resources: [prompts/status]
  verbs: [patch]
# Find subscribed pods (label-selected watch) to signal their sidecars.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# One immutable ConfigMap per revision: created, never applied over one that
# exists (the operator adopts no ConfigMap; get reads one that was there), a
# label patch renumbers it on rollback, a metadata-only list/watch knows which
# exist, get reads the previous revision for the change summary,
# deletecollection prunes history beyond its limit in one request (and removes
# all of a deleted Prompt's revisions), delete one left by an earlier Prompt of
# the same name.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, patch, create, delete, deletecollection]
# Events for rejected templates, failed writes and warnings.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
# Rollouts' Job analysis: one Job per step under a fixed name (get finds the one
# a previous leader created), list/watch follow it, delete and deletecollection
# clear a candidate's Jobs before a retried rollout runs them again.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete, deletecollection]
{{- end }}

{{/*
"true" when the API server serves ValidatingAdmissionPolicy, else "". Against a
cluster (helm install, or helm template with --api-versions from one) the
capabilities list every kind it serves; offline, Helm 4 knows group versions
only (no "v1/ConfigMap"), and then the Kubernetes version decides (GA in 1.30).
*/}}
{{- define "prompt-operator.servesAdmissionPolicy" -}}
{{- $apis := .Capabilities.APIVersions -}}
{{- if $apis.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" -}}
true
{{- else if and (not ($apis.Has "v1/ConfigMap")) (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end -}}
{{- end -}}
