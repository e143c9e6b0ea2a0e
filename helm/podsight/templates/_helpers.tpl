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
Where the Secrets for /metrics appear in the container. Not below /etc/podsight: that is the
ConfigMap's read-only volume, where the runtime cannot create mount points.
*/}}
{{- define "podsight.tlsMountPath" -}}
/etc/podsight-tls
{{- end }}
{{- define "podsight.tokenMountPath" -}}
/etc/podsight-auth/token
{{- end }}
{{- define "podsight.basicMountPath" -}}
/etc/podsight-auth/basic
{{- end }}

{{/* "true" when the agent's /metrics asks for credentials, else empty. */}}
{{- define "podsight.authEnabled" -}}
{{- if or .Values.auth.bearerToken.secretName .Values.auth.basic.username }}true{{ end }}
{{- end }}

{{/* "true" when the tcp family runs with remote workload labels (every agent watches the cluster's
pods and services), else empty. */}}
{{- define "podsight.remoteLabels" -}}
{{- $tcp := dig "programs" "tcp" dict (default dict .Values.config) }}
{{- if and (kindIs "map" $tcp) (ne (toString (dig "enabled" true $tcp)) "false") (eq (toString (dig "remote" "enabled" false $tcp)) "true") }}true{{ end }}
{{- end }}

{{/*
Values that cannot work together, refused before anything renders: Secrets that are not named,
hostPID where it buys nothing.
*/}}
{{- define "podsight.checkValues" -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "podsight: tls.enabled needs tls.secretName (a kubernetes.io/tls Secret with tls.crt and tls.key)" }}
{{- end }}
{{- if and .Values.auth.basic.username (not .Values.auth.basic.secretName) }}
{{- fail "podsight: auth.basic.username needs auth.basic.secretName (the Secret with the password)" }}
{{- end }}
{{- if and .Values.auth.basic.secretName (not .Values.auth.basic.username) }}
{{- fail "podsight: auth.basic.secretName needs auth.basic.username" }}
{{- end }}
{{- if .Values.hostPID }}
{{- $tcp := dig "programs" "tcp" dict (default dict .Values.config) }}
{{- if or (eq (toString (dig "enabled" true $tcp)) "false") (eq (toString (dig "open_connections" "auto" $tcp)) "sk_storage") }}
{{- fail "podsight: hostPID is only for config.programs.tcp.open_connections iter_tcp (or auto); with sk_storage or tcp disabled it grants CAP_SYS_ADMIN and CAP_SYS_PTRACE for nothing" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The agent's config.json: .Values.config plus the keys the chart owns (they must agree with the pod
spec: the port it probes, the path it mounts, the capabilities it grants).
*/}}
{{- define "podsight.config" -}}
{{- include "podsight.checkValues" . }}
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
{{- if and (hasKey $cfg "http") (hasKey $cfg.http "tls") }}
{{- fail "podsight: set tls.enabled and tls.secretName instead of config.http.tls (the chart mounts the Secret)" }}
{{- end }}
{{- if and (hasKey $cfg "http") (hasKey $cfg.http "auth") }}
{{- fail "podsight: set auth.bearerToken or auth.basic instead of config.http.auth (the chart mounts the Secrets)" }}
{{- end }}
{{- $host := .Values.listenAddress }}
{{- if contains ":" $host }}
{{- $host = printf "[%s]" $host }}
{{- end }}
{{- $http := merge (dict "listen" (printf "%s:%d" $host (int .Values.port))) (default dict $cfg.http) }}
{{- if .Values.tls.enabled }}
{{- $dir := include "podsight.tlsMountPath" . }}
{{- $_ := set $http "tls" (dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) "min_version" .Values.tls.minVersion) }}
{{- end }}
{{- $auth := dict }}
{{- if .Values.auth.bearerToken.secretName }}
{{- $_ := set $auth "bearer_token_file" (printf "%s/token" (include "podsight.tokenMountPath" .)) }}
{{- end }}
{{- if .Values.auth.basic.username }}
{{- $_ := set $auth "basic_username" .Values.auth.basic.username }}
{{- $_ := set $auth "basic_password_file" (printf "%s/password" (include "podsight.basicMountPath" .)) }}
{{- end }}
{{- if $auth }}
{{- $_ := set $http "auth" $auth }}
{{- end }}
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
{{- /* iter_tcp: open /proc/<pid>/ns/net of other users' processes (ptrace access check), setns(2). */}}
{{- if .Values.hostPID }}
{{- $caps = concat $caps (list "SYS_ADMIN" "SYS_PTRACE") }}
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

{{/*
Scheme, TLS and credentials of the ServiceMonitor/PodMonitor endpoint, matching what the agent's
/metrics asks for (tls, auth): https with .Values.tls.scrapeTLSConfig; the bearer token if one is
set, else basic credentials (Prometheus presents one of them).
*/}}
{{- define "podsight.scrapeSecurity" -}}
{{- if .Values.tls.enabled }}
scheme: https
{{- with .Values.tls.scrapeTLSConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- else }}
scheme: http
{{- end }}
{{- if .Values.auth.bearerToken.secretName }}
authorization:
  type: Bearer
  credentials:
    name: {{ .Values.auth.bearerToken.secretName }}
    key: {{ .Values.auth.bearerToken.key }}
{{- else if .Values.auth.basic.username }}
basicAuth:
  username:
    name: {{ .Values.auth.basic.secretName }}
    key: {{ .Values.auth.basic.usernameKey }}
  password:
    name: {{ .Values.auth.basic.secretName }}
    key: {{ .Values.auth.basic.passwordKey }}
{{- end }}
{{- end }}
