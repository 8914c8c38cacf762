{{- define "flinksched.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flinksched.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flinksched.labels" -}}
{{ include "flinksched.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flinksched.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "flinksched.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "flinksched.fullname" .) -}}
{{- end -}}

{{- /* Arguments every flinksched process takes before its command. */ -}}
{{- define "flinksched.zkArgs" -}}
- --zk={{ .Values.zookeeper.hosts }}
- --root={{ .Values.zookeeper.root }}
- --session-timeout={{ .Values.zookeeper.sessionTimeout }}
{{- end -}}

{{- /* ZooKeeper credentials, from a Secret, never in the Pod spec itself. */ -}}
{{- define "flinksched.zkAuthEnv" -}}
{{- if .Values.zookeeper.auth.existingSecret }}
- name: FLINKSCHED_ZK_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ .Values.zookeeper.auth.existingSecret }}
      key: {{ .Values.zookeeper.auth.key }}
{{- if .Values.zookeeper.auth.readIdentityKey }}
- name: FLINKSCHED_ZK_READ_IDENTITY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.zookeeper.auth.existingSecret }}
      key: {{ .Values.zookeeper.auth.readIdentityKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "flinksched.configDir" -}}
{{- if .Values.gitSync.enabled -}}
/git/current{{ if .Values.gitSync.subPath }}/{{ .Values.gitSync.subPath | trimPrefix "/" }}{{ end }}
{{- else -}}
/config
{{- end -}}
{{- end -}}
