{{/*
Names. The chart name, or nameOverride: the app.kubernetes.io/name label, which the webhook's
objectSelector uses to leave the chart's own pods out.
*/}}
{{- define "irsa-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: "<release>-<name>", or the release name alone when it already
contains the name (release "irsa-webhook" gives "irsa-webhook", the kustomize names), or
fullnameOverride. 52 characters at most, so that the longest suffix ("-serving-cert", and the audit
CronJob's Job and pod names) still fits in 63.
*/}}
{{- define "irsa-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "irsa-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component ("webhook", "metrics", "audit"): name, instance and component, so
that the webhook Service never routes to an audit pod and two releases never select each other's.
*/}}
{{- define "irsa-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "irsa-webhook.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of every object: the selector labels of its component plus version and owner. */}}
{{- define "irsa-webhook.labels" -}}
{{ include "irsa-webhook.selectorLabels" . }}
app.kubernetes.io/part-of: irsa-webhook
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "irsa-webhook.chart" .root }}
{{- end }}

{{- define "irsa-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "irsa-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from .image (repository, tag) of the values: image.registry prepended when set,
the tag defaulting to the chart's appVersion, a bare "sha256:..." tag pinned as a digest.
*/}}
{{- define "irsa-webhook.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- $repository := .image.repository }}
{{- with .root.Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if hasPrefix "sha256:" $tag }}
{{- printf "%s@%s" $repository $tag }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.image" -}}
{{- include "irsa-webhook.imageRef" (dict "root" . "image" .Values.image) }}
{{- end }}

{{/* The provisioner's image: the webhook's plus boto3 (`make image-provisioner`), same registry. */}}
{{- define "irsa-webhook.provisionerImage" -}}
{{- include "irsa-webhook.imageRef" (dict "root" . "image" .Values.provisioner.image) }}
{{- end }}

{{/* The webhook Service's DNS name: what the serving certificate must be valid for. */}}
{{- define "irsa-webhook.serviceHost" -}}
{{- printf "%s.%s.svc" (include "irsa-webhook.fullname" .) (include "irsa-webhook.namespace" .) }}
{{- end }}

{{/*
Where the serving certificate comes from, from the community chart's keys:
  cert-manager   pki.certManager.enabled
  existing       pki.existingSecret (with pki.caBundle: the CA that signed it)
  provided       pki.cert and pki.key (the chart stores them in a Secret)
  self-managed   none of these: the webhook makes, publishes and rotates its own CA and certificate
                 (--self-managed-tls-secret). The chart renders nothing random and reads nothing
                 from the cluster, so `helm template` (Argo CD, Flux) gives the same bytes every time.
Conflicting keys stop the install with a message instead of one of them being ignored.
*/}}
{{- define "irsa-webhook.certMode" -}}
{{- $pki := .Values.pki }}
{{- if $pki.certManager.enabled }}
{{- if or $pki.existingSecret $pki.cert $pki.key }}
{{- fail "pki: set pki.certManager.enabled=false to use pki.existingSecret or pki.cert/pki.key" }}
{{- end }}
{{- print "cert-manager" }}
{{- else if $pki.existingSecret }}
{{- if or $pki.cert $pki.key }}
{{- fail "pki: pki.existingSecret and pki.cert/pki.key are two different certificates: set one" }}
{{- end }}
{{- if not $pki.caBundle }}
{{- fail "pki.existingSecret needs pki.caBundle, the PEM CA that signed its tls.crt (--set-file pki.caBundle=ca.crt): without it the webhook configuration would trust nothing, and with failurePolicy Fail no pod could be created. (The chart does not read it from the Secret: helm template and GitOps tools cannot read the cluster.)" }}
{{- end }}
{{- print "existing" }}
{{- else if or $pki.cert $pki.key }}
{{- if not (and $pki.cert $pki.key) }}
{{- fail "pki: pki.cert and pki.key go together" }}
{{- end }}
{{- print "provided" }}
{{- else }}
{{- print "self-managed" }}
{{- end }}
{{- end }}

{{/* The Secret the Deployment mounts at /etc/webhook/certs (self-managed: the one the webhook keeps). */}}
{{- define "irsa-webhook.tlsSecretName" -}}
{{- $mode := include "irsa-webhook.certMode" . }}
{{- if eq $mode "existing" }}
{{- .Values.pki.existingSecret }}
{{- else if eq $mode "self-managed" }}
{{- printf "%s-certs" (include "irsa-webhook.fullname" .) }}
{{- else }}
{{- printf "%s-tls" (include "irsa-webhook.fullname" .) }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.selfManaged" -}}
{{- if eq (include "irsa-webhook.certMode" .) "self-managed" }}true{{ end }}
{{- end }}

{{/*
Self-managed certificates: the Secret and webhook configuration the webhook keeps, the names the
certificate carries, and its lifetime. pki.generated.days (the chart's former generated mode, whose
certificate the chart made once) still sets the lifetime when given, renewed a third of it early.
*/}}
{{- define "irsa-webhook.selfManagedArgs" -}}
{{- $managed := .Values.pki.selfManaged }}
{{- $host := include "irsa-webhook.serviceHost" . }}
- --self-managed-tls-secret={{ include "irsa-webhook.tlsSecretName" . }}
- --self-managed-tls-webhook-configuration={{ include "irsa-webhook.fullname" . }}
- --self-managed-tls-hosts={{ $host }},{{ $host }}.cluster.local
{{- if not (kindIs "invalid" .Values.pki.generated.days) }}
{{- /* Renewed a third of the way before expiry, so any number of days keeps a renewal window. */}}
- --self-managed-tls-lifetime={{ mul (int .Values.pki.generated.days) 24 }}h
- --self-managed-tls-renew-before={{ mul (int .Values.pki.generated.days) 8 }}h
{{- else }}
- --self-managed-tls-lifetime={{ $managed.lifetime }}
- --self-managed-tls-renew-before={{ $managed.renewBefore }}
{{- end }}
- --self-managed-tls-check-interval={{ $managed.checkInterval }}
{{- end }}

{{- define "irsa-webhook.configMapMode" -}}
{{- if .Values.config.podIdentityWebhookMap.enabled }}true{{ end }}
{{- end }}

{{- define "irsa-webhook.podIdentityConfigMap" -}}
{{- default (printf "%s-pod-identity" (include "irsa-webhook.fullname" .)) .Values.config.eksPodIdentity.existingConfigMap }}
{{- end }}

{{/* Where the EKS Pod Identity file is mounted (a directory, never subPath: updates must show). */}}
{{- define "irsa-webhook.podIdentityDir" -}}
/etc/irsa-webhook/pod-identity
{{- end }}

{{/*
The flags that say what a pod gets, shared by `serve` and `audit` so that the audit judges pods by
the webhook's own rules. Only the values set are rendered: the defaults give exactly the kustomize
base's args.
*/}}
{{- define "irsa-webhook.mutationArgs" -}}
{{- $config := .Values.config -}}
- --annotation-prefix={{ $config.annotationPrefix }}
- --token-audience={{ $config.tokenAudience }}
{{- end }}

{{- define "irsa-webhook.modeArgs" -}}
{{- $config := .Values.config }}
{{- if $config.podIdentityWebhookMap.enabled }}
- --watch-config-map
{{- end }}
{{- with $config.defaultAwsRegion }}
- --aws-default-region={{ . }}
{{- end }}
{{- if $config.stsRegionalEndpoint }}
- --sts-regional-endpoint=true
{{- end }}
{{- if not (kindIs "invalid" $config.tokenExpiration) }}
- --token-expiration={{ int64 $config.tokenExpiration }}
{{- end }}
{{- with $config.tokenMountPath }}
- --token-mount-path={{ . }}
{{- end }}
{{- if $config.eksPodIdentity.enabled }}
- --watch-container-credentials-config={{ include "irsa-webhook.podIdentityDir" . }}/config.json
{{- end }}
{{- if $config.composeRoleArn.enabled }}
- --compose-role-arn
{{- with $config.composeRoleArn.awsAccountId }}
- --aws-account-id={{ . }}
{{- end }}
{{- with $config.composeRoleArn.awsPartition }}
- --aws-partition={{ . }}
{{- end }}
{{- end }}
{{- with $config.roleSessionName }}
- --role-session-name={{ . }}
{{- end }}
{{- end }}

{{/* The downward-API namespace that --watch-config-map reads its ConfigMap from, and where the
   self-managed Secret is kept. */}}
{{- define "irsa-webhook.modeEnv" -}}
{{- if or .Values.config.podIdentityWebhookMap.enabled (include "irsa-webhook.selfManaged" .) }}
- name: IRSA_WEBHOOK_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
{{- end }}

{{- define "irsa-webhook.modeVolumeMounts" -}}
{{- if .Values.config.eksPodIdentity.enabled }}
- name: pod-identity
  mountPath: {{ include "irsa-webhook.podIdentityDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "irsa-webhook.modeVolumes" -}}
{{- if .Values.config.eksPodIdentity.enabled }}
- name: pod-identity
  configMap:
    name: {{ include "irsa-webhook.podIdentityConfigMap" . }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security level, as in manifests/base/deployment.yaml. */}}
{{- define "irsa-webhook.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
# Group-owns the mounted certificate files so that defaultMode 0440 (owner+group read) is readable.
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "irsa-webhook.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Selector expressions of the chart's own, followed by the user's (selectors AND their expressions).
*/}}
{{- define "irsa-webhook.namespaceSelector" -}}
{{- $excluded := list (include "irsa-webhook.namespace" .) }}
{{- if eq .Values.mutatingWebhook.failurePolicy "Fail" }}
{{- $excluded = prepend $excluded "kube-system" }}
{{- end }}
{{- with .Values.mutatingWebhook.namespaceSelector.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  # The webhook's own namespace: its replicas never wait for themselves. With failurePolicy Fail,
  # kube-system too: a webhook outage must not stop the cluster's own components from starting.
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml $excluded | nindent 6 }}
  # An emergency switch per namespace: label it like a pod to bypass the webhook entirely.
  - key: eks.amazonaws.com/skip-pod-identity-webhook
    operator: DoesNotExist
  {{- with .Values.mutatingWebhook.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "irsa-webhook.objectSelector" -}}
{{- with .Values.mutatingWebhook.objectSelector.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  # Upstream's opt-out: any value, even "false", skips the pod (upstream uses DoesNotExist).
  - key: eks.amazonaws.com/skip-pod-identity-webhook
    operator: DoesNotExist
  # The chart's own pods, wherever they run (NotIn also matches pods without the label).
  - key: app.kubernetes.io/name
    operator: NotIn
    values:
      - {{ include "irsa-webhook.name" . }}
  {{- with .Values.mutatingWebhook.objectSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
serve's whole argument list: the Deployment's, and the audit's too (the audit accepts every serve flag,
serving-only ones have no effect), so that no flag, config.extraArgs included, reaches one and not the other.
*/}}
{{- define "irsa-webhook.serveArgs" -}}
- --port={{ .Values.config.ports.webhook }}
- --metrics-port={{ .Values.config.ports.metrics }}
- --tls-cert=/etc/webhook/certs/tls.crt
- --tls-key=/etc/webhook/certs/tls.key
{{ include "irsa-webhook.mutationArgs" . }}
- --shutdown-delay=5s
- --shutdown-timeout=20s
{{- with include "irsa-webhook.modeArgs" . }}
{{ . | trim }}
{{- end }}
{{- if include "irsa-webhook.selfManaged" . }}
{{ include "irsa-webhook.selfManagedArgs" . | trim }}
{{- end }}
{{- with .Values.config.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The provisioner (provisioner.enabled): "<fullname>-provisioner" names its objects, and by default its
namespace. Never the webhook's namespace: the webhook never mutates pods there, and the controller
gets its AWS credentials from the webhook.
*/}}
{{- define "irsa-webhook.provisionerName" -}}
{{- printf "%s-provisioner" (include "irsa-webhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "irsa-webhook.provisionerNamespace" -}}
{{- $namespace := default (include "irsa-webhook.provisionerName" .) .Values.provisioner.namespace }}
{{- if eq $namespace (include "irsa-webhook.namespace" .) }}
{{- fail (printf "provisioner.namespace: %s is the webhook's namespace, whose pods the webhook never mutates, so the controller would get no AWS credentials: leave provisioner.namespace empty or name another" $namespace) }}
{{- end }}
{{- $namespace }}
{{- end }}

{{/*
The tenants' ClusterRole (provisioner.tenantRole.enabled): IRSARoles, aggregated into `edit`.
*/}}
{{- define "irsa-webhook.tenantRoleName" -}}
{{- printf "%s-tenant" (include "irsa-webhook.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The controller's guardrail flags (provisioner.guardrails), one list item each, only those set;
quoted, since they are the user's text (a " #" or ": " in one would change the YAML).
*/}}
{{- define "irsa-webhook.provisionerGuardrailArgs" -}}
{{- $guardrails := .Values.provisioner.guardrails }}
{{- range $guardrails.requirePermissionsBoundary }}
- {{ printf "--require-permissions-boundary=%s" . | quote }}
{{- end }}
{{- range $guardrails.allowedPolicyARNs }}
- {{ printf "--allowed-policy-arn=%s" . | quote }}
{{- end }}
{{- if $guardrails.forbidInlinePolicies }}
- --forbid-inline-policies
{{- end }}
{{- with $guardrails.rolePath }}
- {{ printf "--role-path=%s" . | quote }}
{{- end }}
{{- with $guardrails.roleNamePrefix }}
- {{ printf "--role-name-prefix=%s" . | quote }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.provisionerClusterName" -}}
{{- required "provisioner.clusterName is required with provisioner.enabled: the cluster's name, in the owner tag of every AWS resource the provisioner creates (--set provisioner.clusterName=prod-eu-1)" .Values.provisioner.clusterName }}
{{- end }}

{{/*
The provisioner's selector labels: a name label of its own ("<name>-provisioner"), which the
webhook's objectSelector lets through (its pods must be mutated: that is how they get their AWS
credentials) and which the webhook's Services, PodDisruptionBudget and spread constraints never select.
*/}}
{{- define "irsa-webhook.provisionerSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-provisioner" (include "irsa-webhook.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: provisioner
{{- end }}

{{- define "irsa-webhook.provisionerLabels" -}}
{{ include "irsa-webhook.provisionerSelectorLabels" . }}
app.kubernetes.io/part-of: irsa-webhook
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "irsa-webhook.chart" . }}
{{- end }}

{{/* The one endpoint of a ServiceMonitor, from metrics.serviceMonitor (the webhook's and the provisioner's). */}}
{{- define "irsa-webhook.serviceMonitorEndpoint" -}}
- port: metrics
  path: /metrics
  scheme: http
  {{- with .interval }}
  interval: {{ . }}
  {{- end }}
  {{- with .scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  {{- if .honorLabels }}
  honorLabels: true
  {{- end }}
  {{- with .relabelings }}
  relabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .endpointAdditionalProperties }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
