{{- define "fn.name" -}}{{ tpl .Values.nameTemplate . }}{{- end -}}
{{- define "fn.labels" -}}
{{- range $k, $v := .Values.labels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}
