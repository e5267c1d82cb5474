{{/* Names and labels. */}}
{{- define "davit-launcher.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "davit-launcher.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "davit-launcher.labels" -}}
{{ include "davit-launcher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "davit-launcher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "davit-launcher.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret with DAVIT_TOKEN and DAVIT_POOL_PRIVATE_KEY: the user's, or ours. */}}
{{- define "davit-launcher.secretName" -}}
{{- if .Values.credentials.existingSecret -}}
{{- .Values.credentials.existingSecret -}}
{{- else -}}
{{- include "davit-launcher.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The grace period: the run timeout plus the margin, unless given. */}}
{{- define "davit-launcher.gracePeriod" -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- else if gt (int .Values.launcher.runTimeoutSeconds) 0 -}}
{{- add (int .Values.launcher.runTimeoutSeconds) (int .Values.drainMarginSeconds) -}}
{{- else -}}
{{- fail "launcher.runTimeoutSeconds is 0 (no run timeout): set terminationGracePeriodSeconds to how long a run may take to finish after the pod is deleted" -}}
{{- end -}}
{{- end -}}

{{- define "davit-launcher.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "davit-launcher.socketPath" -}}
{{- printf "%s/docker.sock" (trimSuffix "/" .Values.dind.socketDir) -}}
{{- end -}}

{{- define "davit-launcher.bool" -}}
{{- if . }}1{{ else }}0{{ end -}}
{{- end -}}
