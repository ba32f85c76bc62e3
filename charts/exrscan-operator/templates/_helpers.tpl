{{/* The release's full name, at most 63 characters. */}}
{{- define "exrscan-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "exrscan-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "exrscan-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels selecting the operator's pods. */}}
{{- define "exrscan-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "exrscan-operator.serviceAccountName" -}}
{{- default (include "exrscan-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Rules the operator needs wherever it watches scans. Roles it creates for worker pods
     (configmaps get/patch/update, pods get/patch) must be a subset of these: the API server
     refuses to let a subject grant permissions it does not hold. */}}
{{- define "exrscan-operator.scanRules" -}}
- apiGroups: [exrscan.dev]
  resources: [exrscans]
  verbs: [get, list, watch]
- apiGroups: [exrscan.dev]
  resources: [exrscans/status]
  verbs: [get, patch, update]
- apiGroups: [exrscan.dev]
  resources: [exrscans/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The Job controller's FailedCreate Events, read when a Job has created no pod at all.
- apiGroups: [""]
  resources: [events]
  verbs: [list]
{{- end -}}
