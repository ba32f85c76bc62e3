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
# Pods are listed by phase (failed, pending, not yet stopped), never watched or patched.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch, delete]
# spec.events: the consumers' Deployment <scan>-follow (applied, read, deleted; not watched).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The Job controller's FailedCreate Events, read when a Job has created no pod at all.
- apiGroups: [""]
  resources: [events]
  verbs: [list]
{{- end -}}

{{/* An image reference from (list <image values> <root context>): global.imageRegistry in
     place of the repository's registry host, then @digest if set, else :tag (default: the
     chart's appVersion). */}}
{{- define "exrscan-operator.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- $repository := $image.repository -}}
{{- with ($root.Values.global).imageRegistry -}}
{{- $parts := splitList "/" $repository -}}
{{- $host := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $host) (contains ":" $host) (eq $host "localhost")) -}}
{{- $repository = join "/" (rest $parts) -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository ($image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The operator pod's pull Secrets: imagePullSecrets plus global.imagePullSecrets (each
     a {name: …} or, as umbrella charts often write them, a plain name). */}}
{{- define "exrscan-operator.imagePullSecrets" -}}
{{- $secrets := list -}}
{{- range concat (.Values.imagePullSecrets | default list) ((.Values.global).imagePullSecrets | default list) -}}
{{- $secrets = append $secrets (kindIs "string" . | ternary (dict "name" .) .) -}}
{{- end -}}
{{- with $secrets | uniq }}
{{- toYaml . }}
{{- end -}}
{{- end -}}

{{/* Label selector of the operator's series in alerts: the job and namespace labels a
     ServiceMonitor of the chart's metrics Service gives them. */}}
{{- define "exrscan-operator.metricSelector" -}}
{{- .Values.monitoring.prometheusRule.selector | default (printf "job=%q,namespace=%q" (printf "%s-metrics" (include "exrscan-operator.fullname" .)) .Release.Namespace) -}}
{{- end -}}

{{/* Anti-affinity spreading several replicas over nodes (podAntiAffinity: soft or hard);
     nothing for one replica or `none`. */}}
{{- define "exrscan-operator.antiAffinity" -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne .Values.podAntiAffinity "none") -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "exrscan-operator.selectorLabels" . | fromYaml)) -}}
podAntiAffinity:
{{- if eq .Values.podAntiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- list $term | toYaml | nindent 4 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    {{- list (dict "weight" 100 "podAffinityTerm" $term) | toYaml | nindent 4 }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
The non-empty workerPods values as JSON (the operator's --worker-pod-defaults); empty when
none is set.
*/}}
{{- define "exrscan-operator.workerPodDefaults" -}}
{{- $defaults := dict -}}
{{- range $key, $value := .Values.workerPods -}}
{{- if $value -}}
{{- $_ := set $defaults $key $value -}}
{{- end -}}
{{- end -}}
{{- if $defaults -}}
{{- toJson $defaults -}}
{{- end -}}
{{- end -}}
