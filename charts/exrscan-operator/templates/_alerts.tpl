{{/* The alerts of the PrometheusRule, on the operator's own series only
     (operator/src/metrics.rs). The gauges `scans` and `files` are 0 on a standby replica:
     they are aggregated with max. Each alert's runbook is the section of
     docs/troubleshooting.md named after it. */}}
{{- define "exrscan-operator.alerts" -}}
{{- $s := include "exrscan-operator.metricSelector" . -}}
- alert: ExrScanOperatorDown
  expr: absent(exrscan_operator_leader{ {{- $s -}} })
  for: 5m
  labels: {severity: critical}
  annotations:
    summary: No exrscan-operator replica is scraped; ExrScans are not reconciled.
    description: Prometheus has had no exrscan_operator_leader series matching { {{- $s -}} } for 5 minutes.
- alert: ExrScanOperatorNoLeader
  expr: sum(exrscan_operator_leader{ {{- $s -}} }) < 1
  for: 2m
  labels: {severity: critical}
  annotations:
    summary: No exrscan-operator replica holds the leader Lease; ExrScans are not reconciled.
    description: Every scraped replica reports exrscan_operator_leader 0; running Jobs go on but their scans' status is not updated.
- alert: ExrScanFailed
  expr: max(exrscan_operator_scans{ {{- $s -}} ,phase="Failed"}) > 0
  for: 5m
  labels: {severity: warning}
  annotations:
    summary: {{ "'{{ $value }} ExrScan(s) in phase Failed.'" }}
    description: "The condition Failed of each such scan says why: kubectl get exs -A | grep Failed. A new run (spec.rescan) or deleting the scan clears it."
- alert: ExrScanStuckPlanning
  expr: max(exrscan_operator_scans{ {{- $s -}} ,phase="Planning"}) > 0
  for: 30m
  labels: {severity: warning}
  annotations:
    summary: An ExrScan has been in phase Planning for 30 minutes.
    description: The planner pod is pending, retrying S3, or listing a very large prefix.
- alert: ExrScanNoProgress
  expr: |-
    max(exrscan_operator_scans{ {{- $s -}} ,phase="Running"}) > 0
    and max(delta(exrscan_operator_files{ {{- $s -}} ,count="processed"}[30m])) <= 0
  for: 15m
  labels: {severity: warning}
  annotations:
    summary: ExrScans are Running but no object was processed in 30 minutes.
    description: Shards are waiting on retries (S3 or the sink unreachable), pending, or cannot report progress.
- alert: ExrScanFilesFailing
  expr: |-
    max(exrscan_operator_files{ {{- $s -}} ,count="failed"})
      / clamp_min(max(exrscan_operator_files{ {{- $s -}} ,count="processed"}), 1) > 0.01
  for: 15m
  labels: {severity: warning}
  annotations:
    summary: More than 1 % of the objects of the current runs could not be indexed.
    description: status.failures of each scan samples the keys and reasons; the shard logs have all of them (file failed).
- alert: ExrScanReconcileErrors
  expr: sum(rate(exrscan_operator_reconcile_errors_total{ {{- $s -}} }[10m])) > 0.05
  for: 10m
  labels: {severity: warning}
  annotations:
    summary: {{ "'exrscan-operator reconciles fail ({{ $value | humanize }}/s).'" }}
    description: The operator log's `reconcile failed` lines carry the error; kube errors are usually RBAC or an unreachable API server.
- alert: ExrScanReconcileSlow
  expr: |-
    histogram_quantile(0.99, sum by (le) (rate(exrscan_operator_reconcile_duration_seconds_bucket{ {{- $s -}} }[10m]))) > 2
  for: 15m
  labels: {severity: info}
  annotations:
    summary: {{ "'The 99th percentile of exrscan-operator reconciles takes {{ $value | humanizeDuration }}.'" }}
    description: Reconciles wait on a slow API server, or too many scans share --concurrency.
{{- end -}}
