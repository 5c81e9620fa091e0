{{- define "forge.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "forge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- define "forge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "forge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app: {{ include "forge.name" . }}
{{ include "forge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "forge.image" -}}
{{- $reg := .Values.global.imageRegistry | default .Values.image.registry -}}
{{- printf "%s/%s:%s" $reg .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- define "forge.inline_configuration" -}}
{{- range $section, $v := .Values.config }}
{{- if kindIs "map" $v }}
{{ $section }}: |
{{- range $k, $x := $v }}
  {{ $k }}={{ $x }}
{{- end }}
{{- else }}
_generals_{{ $section }}: {{ $v | quote }}
{{- end }}
{{- end }}
{{- end -}}
{{- define "forge.dbHost" -}}
{{- if .Values.postgresql.enabled -}}
{{ .Release.Name }}-postgresql.{{ .Release.Namespace }}.svc.cluster.local:5432
{{- end -}}
{{- end -}}
{{- define "forge.runner.name" -}}
{{- printf "%s-runner-%s" (include "forge.fullname" .root) .pool.name -}}
{{- end -}}
