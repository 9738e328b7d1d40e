{{/* Names, labels and values shared by the templates. */}}

{{- define "fleetwatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Object name of a component: fleetwatch.name (dict "ctx" $ "c" "agent"). */}}
{{- define "fleetwatch.name" -}}
{{- printf "%s-%s" (include "fleetwatch.fullname" .ctx) .c -}}
{{- end -}}

{{- define "fleetwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: fleetwatch
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "fleetwatch.selector" . }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component (stable across upgrades). */}}
{{- define "fleetwatch.selector" -}}
app.kubernetes.io/name: fleetwatch
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .c }}
{{- end -}}

{{- define "fleetwatch.image" -}}
{{- $img := mergeOverwrite (deepCopy .ctx.Values.image) (.img | default dict) -}}
{{- printf "%s:%s" $img.repository ($img.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/* The ClickHouse Secret's name. */}}
{{- define "fleetwatch.chSecret" -}}
{{- .Values.clickhouse.existingSecret | default (include "fleetwatch.name" (dict "ctx" . "c" "clickhouse")) -}}
{{- end -}}

{{/* The TLS Secret's name. */}}
{{- define "fleetwatch.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (include "fleetwatch.name" (dict "ctx" . "c" "tls")) -}}
{{- end -}}

{{/*
The DSN for one user: clickhouse.dsn with the user inserted and, with a CA,
ca_file appended. fleetwatch.dsn (dict "ctx" $ "user" "fleetwatch_collector").
*/}}
{{- define "fleetwatch.dsn" -}}
{{- $dsn := .ctx.Values.clickhouse.dsn -}}
{{- if not (regexMatch "^clickhouse://[^@/?]+(/[^?]*)?(\\?.*)?$" $dsn) -}}
{{- fail (printf "clickhouse.dsn %q: want clickhouse://host:port[,host:port]/database[?params], without user or password (passwords come from a Secret)" $dsn) -}}
{{- end -}}
{{- $dsn = printf "clickhouse://%s@%s" .user (trimPrefix "clickhouse://" $dsn) -}}
{{- $ca := .ctx.Values.clickhouse.ca -}}
{{- if or $ca.secret $ca.configMap -}}
{{- $dsn = printf "%s%sca_file=/etc/fleetwatch/clickhouse-ca/%s" $dsn (ternary "&" "?" (contains "?" $dsn)) $ca.key -}}
{{- end -}}
{{- $dsn -}}
{{- end -}}

{{/* Volumes and mounts for the ClickHouse CA, when configured. */}}
{{- define "fleetwatch.chCAVolume" -}}
{{- $ca := .Values.clickhouse.ca -}}
{{- if $ca.secret }}
- name: clickhouse-ca
  secret:
    secretName: {{ $ca.secret }}
    items: [{key: {{ $ca.key }}, path: {{ $ca.key }}}]
{{- else if $ca.configMap }}
- name: clickhouse-ca
  configMap:
    name: {{ $ca.configMap }}
    items: [{key: {{ $ca.key }}, path: {{ $ca.key }}}]
{{- end }}
{{- end -}}

{{- define "fleetwatch.chCAMount" -}}
{{- if or .Values.clickhouse.ca.secret .Values.clickhouse.ca.configMap }}
- name: clickhouse-ca
  mountPath: /etc/fleetwatch/clickhouse-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The ClickHouse password of one component as a file: a volume with only its
key. fleetwatch.chPasswordVolume (dict "ctx" $ "user" "collector").
*/}}
{{- define "fleetwatch.chPasswordVolume" -}}
- name: clickhouse-password
  secret:
    secretName: {{ include "fleetwatch.chSecret" .ctx }}
    defaultMode: 0400
    items:
      - key: {{ index .ctx.Values.clickhouse.passwordKeys .user }}
        path: password
{{- end -}}

{{/* Environment shared by the ClickHouse clients. */}}
{{- define "fleetwatch.chEnv" -}}
- name: FLEETWATCH_CLICKHOUSE_DSN
  value: {{ include "fleetwatch.dsn" (dict "ctx" .ctx "user" (index .ctx.Values.clickhouse.users .user)) | quote }}
- name: FLEETWATCH_CLICKHOUSE_PASSWORD_FILE
  value: /etc/fleetwatch/clickhouse/password
{{- end -}}

{{- define "fleetwatch.chPasswordMount" -}}
- name: clickhouse-password
  mountPath: /etc/fleetwatch/clickhouse
  readOnly: true
{{- end -}}

{{/* Pod-level security context of the non-root components. */}}
{{- define "fleetwatch.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* "true" when any value of the map is non-empty. */}}
{{- define "fleetwatch.anyValue" -}}
{{- range $_, $v := . }}{{ if $v }}true{{ end }}{{ end -}}
{{- end -}}

{{/*
fleetwatch.peers: the NetworkPolicy peers of a place given as CIDRs and/or
namespace and pod selectors ({cidrs, namespaceSelector, podSelector}), as a
JSON list (empty: the rule names no peer).
*/}}
{{- define "fleetwatch.peers" -}}
{{- $to := list }}
{{- range .cidrs }}{{ $to = append $to (dict "ipBlock" (dict "cidr" .)) }}{{ end }}
{{- if or .namespaceSelector .podSelector }}
{{- $peer := dict }}
{{- with .namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end }}
{{- with .podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end }}
{{- $to = append $to $peer }}
{{- end }}
{{- toJson $to }}
{{- end }}
