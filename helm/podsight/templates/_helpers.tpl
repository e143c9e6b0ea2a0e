{{/* Names, labels, the agent's configuration and its capabilities: computed once, used everywhere. */}}

{{- define "podsight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podsight.fullname" -}}
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

{{- define "podsight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podsight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podsight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "podsight.labels" -}}
helm.sh/chart: {{ include "podsight.chart" . }}
{{ include "podsight.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: podsight
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "podsight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podsight.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "podsight.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the host's cgroup2 hierarchy appears in the container; the agent's cgroup_root. */}}
{{- define "podsight.cgroup2MountPath" -}}
/host/cgroup2
{{- end }}

{{/*
The agent's config.json: .Values.config plus the keys the chart owns (they must agree with the pod
spec: the port it probes, the path it mounts, the capabilities it grants).
*/}}
{{- define "podsight.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if and (hasKey $cfg "http") (hasKey $cfg.http "listen") }}
{{- fail "podsight: set port and listenAddress instead of config.http.listen" }}
{{- end }}
{{- if hasKey $cfg "cgroup_root" }}
{{- fail "podsight: set hostPaths.cgroup2 instead of config.cgroup_root" }}
{{- end }}
{{- if hasKey $cfg "bpf_stats" }}
{{- fail "podsight: set bpfStats instead of config.bpf_stats (it decides whether CAP_SYS_ADMIN is granted)" }}
{{- end }}
{{- $host := .Values.listenAddress }}
{{- if contains ":" $host }}
{{- $host = printf "[%s]" $host }}
{{- end }}
{{- $http := merge (dict "listen" (printf "%s:%d" $host (int .Values.port))) (default dict $cfg.http) }}
{{- $_ := set $cfg "http" $http }}
{{- $_ := set $cfg "cgroup_root" (include "podsight.cgroup2MountPath" .) }}
{{- $_ := set $cfg "bpf_stats" .Values.bpfStats }}
{{- toPrettyJson $cfg }}
{{- end }}

{{/*
Capabilities each program family needs to load and attach (docs/security.md has the evidence;
tests/packaging proves each family works with exactly its set and fails without any one of it).
A family in config.programs without an entry here stops the rendering: add its row when adding it.
*/}}
{{- define "podsight.familyCapabilities" -}}
exec: [BPF, PERFMON]
tcp: [BPF, PERFMON]
xdp: [BPF, PERFMON, NET_ADMIN]
cgroup_skb: [BPF, PERFMON, NET_ADMIN]
{{- end }}

{{/* The container's capability list: the union over enabled families, sorted, as a YAML list. */}}
{{- define "podsight.capabilities" -}}
{{- $table := include "podsight.familyCapabilities" . | fromYaml }}
{{- $caps := list }}
{{- $programs := default dict .Values.config.programs }}
{{- range $family, $settings := $programs }}
{{- if not (hasKey $table $family) }}
{{- fail (printf "podsight: no capability entry for program family %q in templates/_helpers.tpl" $family) }}
{{- end }}
{{- if or (not (kindIs "map" $settings)) (ne (toString (dig "enabled" true $settings)) "false") }}
{{- $caps = concat $caps (get $table $family) }}
{{- end }}
{{- end }}
{{- if .Values.bpfStats }}
{{- $caps = append $caps "SYS_ADMIN" }}
{{- end }}
{{- if not $caps }}
{{- fail "podsight: every program family is disabled; enable at least one under config.programs" }}
{{- end }}
{{- toYaml (uniq $caps | sortAlpha) }}
{{- end }}

{{/*
Target relabelings both monitors share: job "podsight" whatever the object is called (the alerts and
dashboards select on it, as the plain scrape config in deploy/prometheus/ does) and the node name.
*/}}
{{- define "podsight.relabelings" -}}
- action: replace
  targetLabel: job
  replacement: podsight
- action: replace
  sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
{{- end }}
