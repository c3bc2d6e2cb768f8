{{- /* Named templates of the wasmray-operator chart: names, labels, the operator's arguments and RBAC rules. */ -}}

{{- define "wasmray-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wasmray-operator.component" -}}
{{- default .Chart.Name .Values.componentOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* The release's full name: fullnameOverride, else the release name if it contains the chart's name, else both. */ -}}
{{- define "wasmray-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wasmray-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wasmray-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmray-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wasmray-operator.labels" -}}
{{ include "wasmray-operator.selectorLabels" . }}
helm.sh/chart: {{ include "wasmray-operator.chart" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "wasmray-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wasmray-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "wasmray-operator.pluginsConfigMap" -}}
{{- .Values.plugins.existingConfigMap | default (printf "%s-plugins" (include "wasmray-operator.fullname" .)) -}}
{{- end -}}

{{- /* The batch scheduler's name: `name` (`default`, KubeRay's name for the default scheduler, is none), or volcano for the deprecated `enabled`; KubeRay refuses both at once. */ -}}
{{- define "wasmray-operator.batchScheduler" -}}
{{- $scheduler := .Values.batchScheduler | default dict -}}
{{- if and $scheduler.enabled $scheduler.name -}}
{{- fail "batchScheduler.enabled and batchScheduler.name are both set: set only batchScheduler.name" -}}
{{- end -}}
{{- if $scheduler.enabled -}}volcano{{- else if ne (toString $scheduler.name) "default" -}}{{- $scheduler.name | default "" -}}{{- end -}}
{{- end -}}

{{- /* The namespaces the operator watches, comma-separated; empty for all (KubeRay's rules). */ -}}
{{- define "wasmray-operator.watchNamespaces" -}}
{{- if .Values.watchNamespace -}}
{{- join "," .Values.watchNamespace -}}
{{- else if .Values.singleNamespaceInstall -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- /* The arguments of `wasmray run`, one per list item, with KubeRay's flag names where KubeRay has one. */ -}}
{{- define "wasmray-operator.args" -}}
{{- $args := list "run" -}}
{{- if .Values.configuration.enabled -}}
{{- $args = append $args "--config=/etc/wasmray/config.yaml" -}}
{{- end -}}
{{- with .Values.featureGates -}}
{{- $gates := list -}}
{{- range . -}}
{{- $gates = append $gates (printf "%s=%t" .name .enabled) -}}
{{- end -}}
{{- $args = append $args (printf "--feature-gates=%s" (join "," $gates)) -}}
{{- end -}}
{{- with include "wasmray-operator.batchScheduler" . -}}
{{- $args = append $args (printf "--batch-scheduler=%s" .) -}}
{{- end -}}
{{- with include "wasmray-operator.watchNamespaces" . -}}
{{- $args = append $args (printf "--watch-namespace=%s" .) -}}
{{- end -}}
{{- if and .Values.logging.baseDir .Values.logging.fileName -}}
{{- fail "logging.baseDir and logging.fileName: wasmray logs to stdout only, it writes no log file" -}}
{{- end -}}
{{- with .Values.logging.stdoutEncoder -}}
{{- $args = append $args (printf "--log-stdout-encoder=%s" .) -}}
{{- end -}}
{{- if .Values.useKubernetesProxy -}}
{{- fail "useKubernetesProxy: reaching Ray head Pods through the API server's proxy is not supported yet" -}}
{{- end -}}
{{- if .Values.leaderElectionEnabled -}}
{{- $args = concat $args (list "--enable-leader-election=true" (printf "--leader-election-namespace=%s" .Release.Namespace)) -}}
{{- else -}}
{{- $args = append $args "--enable-leader-election=false" -}}
{{- end -}}
{{- $args = append $args (ternary "--metrics-addr=:8080" "--metrics-addr=0" .Values.metrics.enabled) -}}
{{- $args = append $args "--health-probe-bind-address=:8082" -}}
{{- $concurrency := toString .Values.reconcileConcurrency -}}
{{- if not (regexMatch "^[1-9][0-9]*$" $concurrency) -}}
{{- fail (printf "reconcileConcurrency must be a positive integer, got %q" $concurrency) -}}
{{- end -}}
{{- $args = append $args (printf "--reconcile-concurrency=%s" $concurrency) -}}
{{- with .Values.kubeClient -}}
{{- if hasKey . "qps" -}}
{{- $args = append $args (printf "--qps=%v" .qps) -}}
{{- end -}}
{{- if hasKey . "burst" -}}
{{- $args = append $args (printf "--burst=%v" .burst) -}}
{{- end -}}
{{- end -}}
{{- $args = append $args (printf "--plugins-config-map=%s" (include "wasmray-operator.pluginsConfigMap" .)) -}}
{{- $args = append $args "--compile-cache-dir=/var/cache/wasmray" -}}
{{- toYaml $args -}}
{{- end -}}

{{- /*
The operator's rules in every namespace it watches (a ClusterRole, or a Role per namespace).
Beyond what wasmray writes today (Pods, Services, Secrets, ServiceAccounts, Roles, RoleBindings,
Jobs, Ingresses, Events, the Ray resources and batch schedulers' PodGroups) they hold what the
KubeRay operator is granted, so that a KubeRay install's permissions carry over one for one.
Called with (dict "scheduler" NAME).
*/ -}}
{{- define "wasmray-operator.rules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete, deletecollection, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [pods/status, services/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [pods/resize]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods/proxy, services/proxy]
  verbs: [create, get, patch, update]
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, get, list, patch, update, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create, get, list, patch, update, watch]
- apiGroups: [networking.k8s.io, extensions]
  resources: [ingresses]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, httproutes]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [route.openshift.io]
  resources: [routes]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [ray.io]
  resources: [rayclusters, rayjobs, rayservices]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [ray.io]
  resources: [rayclusters/status, rayjobs/status, rayservices/status]
  verbs: [get, patch, update]
- apiGroups: [ray.io]
  resources: [rayclusters/finalizers, rayjobs/finalizers, rayservices/finalizers]
  verbs: [update]
{{- if eq .scheduler "volcano" }}
- apiGroups: [scheduling.volcano.sh]
  resources: [podgroups]
  verbs: [create, delete, get, list, patch, update, watch]
{{- else if eq .scheduler "scheduler-plugins" }}
- apiGroups: [scheduling.x-k8s.io]
  resources: [podgroups]
  verbs: [create, delete, get, list, patch, update, watch]
{{- else if eq .scheduler "kai-scheduler" }}
{{- /* KAI's own PodGrouper makes its PodGroups; the operator only reads them. */}}
- apiGroups: [scheduling.run.ai]
  resources: [podgroups]
  verbs: [get, list, watch]
{{- end }}
{{- end -}}
