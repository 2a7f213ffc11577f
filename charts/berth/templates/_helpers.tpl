{{/* Names, labels and the etcd addresses every template shares. */}}

{{/* The chart's name, unless nameOverride says otherwise. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name: release and chart name, at most 63 characters. */}}
{{- define "berth.fullname" -}}
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

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "berth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "berth.etcdName" -}}
{{- printf "%s-etcd" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The DNS name of bundled etcd member i: <etcd>-<i>.<etcd>-headless.<namespace>.svc.<domain>. */}}
{{- define "berth.etcdMemberHost" -}}
{{- $name := include "berth.etcdName" .root -}}
{{- printf "%s-%d.%s-headless.%s.svc.%s" $name (int .index) $name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/*
etcd client URLs, comma separated: every bundled member (a client fails over between
them), or the external endpoints.
*/}}
{{- define "berth.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- if .Values.etcdTls.enabled -}}
{{- fail "etcdTls.enabled needs an etcd served over https, and the bundled etcd serves plain http: set etcd.enabled=false and externalEtcd.endpoints to https:// URLs" -}}
{{- end -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "http://%s:2379" (include "berth.etcdMemberHost" (dict "root" $ "index" $i))) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- required "externalEtcd.endpoints must list the etcd client URLs when etcd.enabled is false" (join "," .Values.externalEtcd.endpoints) -}}
{{- end -}}
{{- end -}}

{{/* --initial-cluster of the bundled etcd: name=peer URL of every member. */}}
{{- define "berth.etcdInitialCluster" -}}
{{- $name := include "berth.etcdName" . -}}
{{- $members := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $members = append $members (printf "%s-%d=http://%s:2380" $name $i (include "berth.etcdMemberHost" (dict "root" $ "index" $i))) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}

{{/*
The etcd client-certificate secret (etcdTls): mounted at /etc/berth/etcd-tls in every
container that talks to etcd, whose --etcd-ca, --etcd-cert and --etcd-key name its files.
*/}}
{{- define "berth.etcdTlsVolume" -}}
{{- if .Values.etcdTls.enabled }}
- name: etcd-tls
  secret:
    secretName: {{ required "etcdTls.secretName is required when etcdTls.enabled is true" .Values.etcdTls.secretName }}
{{- end }}
{{- end -}}

{{- define "berth.etcdTlsMount" -}}
{{- if .Values.etcdTls.enabled }}
- name: etcd-tls
  mountPath: /etc/berth/etcd-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Berth's flags for the mounted secret; include them only when etcdTls.enabled. */}}
{{- define "berth.etcdTlsArgs" -}}
- --etcd-ca=/etc/berth/etcd-tls/ca.crt
- --etcd-cert=/etc/berth/etcd-tls/tls.crt
- --etcd-key=/etc/berth/etcd-tls/tls.key
{{- end -}}
