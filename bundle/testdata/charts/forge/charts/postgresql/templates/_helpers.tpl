{{- define "postgresql.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "postgresql.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "postgresql.sts" -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .name }}
  labels: {{- include "postgresql.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: 1
  serviceName: {{ .name }}-hl
  selector: {matchLabels: {app.kubernetes.io/component: {{ .component }}, app.kubernetes.io/instance: {{ .root.Release.Name }}}}
  template:
    metadata: {labels: {app.kubernetes.io/component: {{ .component }}, app.kubernetes.io/instance: {{ .root.Release.Name }}}}
    spec:
      containers:
      - name: postgresql
        image: docker.io/postgres:{{ .root.Chart.AppVersion }}
        env:
        - {name: POSTGRES_USER, value: {{ .root.Values.auth.username | quote }}}
        - {name: POSTGRES_DB, value: {{ .root.Values.auth.database | quote }}}
        - name: POSTGRES_PASSWORD
          valueFrom: {secretKeyRef: {name: {{ include "postgresql.fullname" .root }}, key: password}}
        resources: {{- toYaml .root.Values.primary.resources | nindent 10 }}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: {{ .root.Values.global.storageClass }}
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 8Gi}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}-hl
  labels: {{- include "postgresql.labels" .root | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports: [{name: tcp-postgresql, port: 5432}]
  selector: {app.kubernetes.io/component: {{ .component }}, app.kubernetes.io/instance: {{ .root.Release.Name }}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels: {{- include "postgresql.labels" .root | nindent 4 }}
spec:
  ports: [{name: tcp-postgresql, port: 5432}]
  selector: {app.kubernetes.io/component: {{ .component }}, app.kubernetes.io/instance: {{ .root.Release.Name }}}
{{- end -}}
