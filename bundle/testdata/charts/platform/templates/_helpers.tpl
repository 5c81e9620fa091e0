{{/* Expand the name of the chart. */}}
{{- define "platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, truncated at 63 characters (DNS naming spec). */}}
{{- define "platform.fullname" -}}
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

{{- define "platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Context for one service: the root and the service merged over the defaults. */}}
{{- define "platform.svc" -}}
{{- $svc := mergeOverwrite (deepCopy .root.Values.defaults) .svc -}}
{{- toYaml $svc -}}
{{- end }}

{{- define "platform.svcName" -}}
{{- printf "%s-%s" (include "platform.fullname" .root) .svc.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "platform.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc.name }}
{{- end }}

{{- define "platform.labels" -}}
helm.sh/chart: {{ include "platform.chart" .root }}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "platform.image" -}}
{{- $reg := .root.Values.global.image.registry -}}
{{- printf "%s/%s/%s:%s" $reg (include "platform.name" .root) .svc.name (.svc.tag | default .root.Chart.AppVersion) -}}
{{- end }}

{{- define "platform.probe" -}}
httpGet:
  path: {{ .svc.probes.path }}
  port: http
initialDelaySeconds: {{ .svc.probes.initialDelaySeconds }}
{{- end }}
