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

{{/* The grace period, unless given: the longest a run that started just
before the pod was deleted can still take. Its image pull comes first and is
outside the run timeout (which counts from the run container's start), so
both, plus the margin for the last report. An explicit value below the run
timeout is refused: SIGKILL would then cut runs that are within their limit. */}}
{{- define "davit-launcher.gracePeriod" -}}
{{- $run := int .Values.launcher.runTimeoutSeconds -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if lt $grace $run -}}
{{- fail (printf "terminationGracePeriodSeconds %d is below launcher.runTimeoutSeconds %d: a deleted pod would kill runs within their time limit (leave it unset for run timeout + pull timeout + drainMarginSeconds)" $grace $run) -}}
{{- end -}}
{{- $grace -}}
{{- else if gt $run 0 -}}
{{- add $run (int .Values.launcher.dockerPullTimeoutSeconds) (int .Values.drainMarginSeconds) -}}
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
