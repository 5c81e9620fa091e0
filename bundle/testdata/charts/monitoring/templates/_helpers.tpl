{{- define "mon.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}
{{- define "mon.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- define "mon.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
chart: {{ .Chart.Name }}-{{ .Chart.Version }}
release: {{ .Release.Name | quote }}
heritage: {{ .Release.Service | quote }}
{{- if .Values.commonLabels }}
{{ toYaml .Values.commonLabels }}
{{- end }}
{{- end -}}
{{- define "mon.exporter.name" -}}
{{- printf "%s-%s" (include "mon.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "mon.exporter.selector" -}}
app.kubernetes.io/name: {{ .name }}-exporter
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}
{{- define "mon.podSpec" -}}
serviceAccountName: {{ include "mon.exporter.name" . }}
{{- if .e.hostNetwork }}
hostNetwork: true
hostPID: true
{{- end }}
securityContext: {runAsNonRoot: true, runAsUser: 65534}
containers:
- name: exporter
  image: "quay.io/prometheus/{{ .name }}-exporter:{{ .root.Chart.AppVersion }}"
  args:
  - --web.listen-address=:{{ .e.port }}
  ports:
  - {name: metrics, containerPort: {{ .e.port }}}
  resources: {requests: {cpu: 10m, memory: 32Mi}}
{{- end -}}
