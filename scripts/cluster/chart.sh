#!/usr/bin/env bash
# Install or upgrade the chart in the local cluster with the real helm: charts/recipe-training-operator
# as release $RELEASE in $OPERATOR_NAMESPACE, CRD through the chart. Extra arguments go to helm
# (`chart.sh --set replicaCount=2`); without any, the values go back to the baseline below.
# CLUSTER_WEBHOOK=0 installs it without the admission webhook. A failed upgrade rolls back, so one
# bad upgrade fails one test instead of leaving the release broken for every later one.
# The operator runs from its image on the real node (tolerating its taint), or, with CLUSTER_OPERATOR=local
# (recorded by up.sh in .cluster/run/operator.mode), replicaCount=0 and the operator runs as a local
# process with the Deployment's environment and ServiceAccount (operator.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=$STATE/kubeconfig
export HELM_CACHE_HOME=$ROOT/.tools/helm/cache HELM_CONFIG_HOME=$ROOT/.tools/helm/config \
  HELM_DATA_HOME=$ROOT/.tools/helm/data
# CLUSTER_CHART_OPERATOR=in-cluster|local overrides the cluster's mode for this one install.
mode=${CLUSTER_CHART_OPERATOR:-$(cat "$RUN/operator.mode" 2>/dev/null || echo "${CLUSTER_OPERATOR:-in-cluster}")}
if [ "$mode" = local ]; then
  placement=(--set replicaCount=0)
else
  placement=(--set replicaCount=1 --set-string "nodeSelector.${REAL_NODE_LABEL//./\\.}=true"
    --set "tolerations[0].key=$REAL_NODE_LABEL" --set 'tolerations[0].operator=Exists'
    --set 'tolerations[0].effect=NoSchedule')
fi
# shellcheck disable=SC2086  # CLUSTER_HELM_ARGS is a list of helm arguments
"$HELM" upgrade --install "$RELEASE" "$ROOT/charts/recipe-training-operator" \
  --namespace "$OPERATOR_NAMESPACE" --create-namespace --wait --timeout 2m --rollback-on-failure \
  "${placement[@]}" --set "webhook.enabled=$([ "${CLUSTER_WEBHOOK:-1}" = 1 ] && echo true || echo false)" \
  ${CLUSTER_HELM_ARGS:-} "$@"
