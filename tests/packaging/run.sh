#!/usr/bin/env bash
# Proves what users install with the tools that consume it: the helm chart (helm lint/template over a
# matrix of values, offline schema validation, the rendered config judged by the agent), deploy/ in
# sync with the chart, the alerts (promtool), the capabilities the chart grants (the agent with
# exactly those, per family, and the whole integration suite again under them), the helm test
# script against a real agent, and the container image (built with podman from the Dockerfile and
# run as the chart runs it). scripts/test.sh runs it after the integration tests, as root, after
# scripts/build.sh. Everything it downloads comes from apt or npm and is cached in ignored
# directories of the repository (.cache/packaging, tests/packaging/node_modules).
#
#   tests/packaging/run.sh [STEP...]   steps: chart config deploy rules capabilities suite helmtest image
#   PODSIGHT_PACKAGING_SKIP="image suite" tests/packaging/run.sh    (for local iterations; CI runs all)
#   PODSIGHT_PACKAGING_VERBOSE=1 tests/packaging/run.sh             (show the output of passing checks)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source tests/packaging/tools.sh
export NODE_PATH=$root/tests/packaging/node_modules
build=${BUILD_DIR:-build}
agent=$root/$build/agent/podsight
chart=helm/podsight
# The capabilities the chart grants with its default values (docs/security.md). Values files in
# tests/packaging/values/ state theirs in an `# expect-capabilities:` line, where "defaults" stands
# for this list.
default_caps=BPF,NET_ADMIN,PERFMON  # sorted, as the chart lists them
work=$(mktemp -d /tmp/podsight-packaging.XXXXXX)
cleanups=()
cleanup() {
	local c
	for c in "${cleanups[@]}"; do eval "$c" >/dev/null 2>&1; done
	rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
failures=()
note() { echo "packaging: $*"; }
# check NAME COMMAND...: one check; its output is shown when it fails.
check() {
	local name=$1 log=$work/check.log
	shift
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "  ok    $name"
		[[ -z ${PODSIGHT_PACKAGING_VERBOSE:-} ]] || sed 's/^/        /' "$log"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "  FAIL  $name"
		tail -60 "$log" | sed 's/^/        /'
	fi
}

# ---- helpers ------------------------------------------------------------------------------------------
render() { # render OUT [helm args...]
	local out=$1
	shift
	"$HELM" template podsight "$chart" --namespace podsight "$@" >"$out"
}

# field FILE KIND EXPR: a JavaScript expression over the first object of KIND in a rendered file.
field() {
	node -e '
		const [file, kind, expr] = process.argv.slice(1);
		const o = require("yaml").parseAllDocuments(require("fs").readFileSync(file, "utf8")).map((d) => d.toJS())
			.find((d) => d && d.kind === kind && (kind !== "ConfigMap" || (d.data && d.data["config.json"])));
		console.log(eval(expr));' "$1" "$2" "$3"
}
capabilities_of() { field "$1" DaemonSet 'o.spec.template.spec.containers[0].securityContext.capabilities.add.join(",")'; }
# The rendered agent config with cgroup_root pointing at this host's cgroup2 mount instead of the
# pod's /host/cgroup2, so that the agent can run with it here.
host_config_of() {
	node -e '
		const c = JSON.parse(process.argv[1]);
		c.cgroup_root = process.argv[2];
		if (process.argv[3]) c.http = { ...c.http, listen: process.argv[3] };
		require("fs").writeFileSync(process.argv[4], JSON.stringify(c, null, 2));' \
		"$(field "$1" ConfigMap 'o.data["config.json"]')" "$(host_cgroup2)" "${3:-}" "$2"
}
host_cgroup2() { awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# http PORT PATH: "STATUS BODY..." of a GET on 127.0.0.1 (bash's /dev/tcp: no curl needed).
http() {
	local resp
	resp=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
		printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$1" >&3; cat <&3' "$1" "$2" 2>/dev/null) || return 1
	printf '%s\n' "$resp" | awk 'NR == 1 { print $2 } body { print } /^\r?$/ { body = 1 }'
}
# tls_ready_or_log PORT LOG: until /readyz answers over TLS (any status), at most 20 s, else show the
# agent's LOG. Not wait_ready: a TLS listener answers its plain request with a 400 and closes with
# the rest unread, whose reset can beat the answer to the reader.
tls_ready_or_log() {
	local i
	for i in $(seq 200); do
		curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$1/readyz" && return 0
		sleep 0.1
	done
	tail -30 "$2"
	return 1
}
wait_ready() { # wait_ready PORT: until /readyz answers (any status), at most 20 s
	local i
	for i in $(seq 200); do
		http "$1" /readyz >/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# setpriv_for CAPS: SETPRIV=(the command prefix that runs a program as root with exactly CAPS, as the
# container runtime applies the chart's securityContext). setpriv execs the program: same pid.
setpriv_for() {
	local bounding=-all c
	for c in ${1//,/ }; do bounding+=",+${c,,}"; done
	SETPRIV=(setpriv --bounding-set "$bounding" --inh-caps -all --ambient-caps -all --no-new-privs --)
}
with_caps() { # with_caps CAPS CMD...
	setpriv_for "$1"
	shift
	"${SETPRIV[@]}" "$@"
}
without() { # without LIST ITEM: the comma list minus one item
	local out="" c
	for c in ${1//,/ }; do [[ $c == "$2" ]] || out+="${out:+,}$c"; done
	echo "$out"
}

# The matrix: the defaults and every values file, rendered once.
render_matrix() {
	[[ -d $work/matrix ]] && return 0
	mkdir -p "$work/matrix"
	render "$work/matrix/defaults.yaml" || return 1
	local f
	for f in tests/packaging/values/*.yaml; do
		render "$work/matrix/$(basename "$f")" -f "$f" || return 1
	done
}

# ---- chart: lint, render, validate ---------------------------------------------------------------
step_chart() {
	note "chart: helm lint --strict, helm template over the defaults and tests/packaging/values/, objects validated offline"
	check "helm lint --strict (defaults)" "$HELM" lint --strict "$chart"
	check "render the matrix" render_matrix
	check "defaults: schemas, unknown fields, node-agent rules" \
		node tests/packaging/validate-objects.mjs "$work/matrix/defaults.yaml" --expect-capabilities "$default_caps"
	local f caps
	for f in tests/packaging/values/*.yaml; do
		caps=$(sed -n 's/^# expect-capabilities: //p' "$f")
		caps=${caps//defaults/$default_caps}
		check "$(basename "$f"): helm lint --strict" "$HELM" lint --strict "$chart" -f "$f"
		check "$(basename "$f"): schemas, unknown fields, rules, capabilities $caps" \
			node tests/packaging/validate-objects.mjs "$work/matrix/$(basename "$f")" --expect-capabilities "$caps"
	done
	for f in tests/packaging/invalid/*.yaml; do
		grep -q '^# expect-error: ' "$f" || continue
		check "refuses $(basename "$f")" refuses "$f" "$(sed -n 's/^# expect-error: //p' "$f")"
	done
	check "Chart.yaml appVersion is the agent's version" chart_version_matches
	check "NOTES.txt names the capabilities" bash -c \
		"'$HELM' install --dry-run=client podsight '$chart' --namespace podsight | grep -F 'Capabilities granted: ${default_caps//,/, }'"
}
refuses() {
	local out
	if out=$("$HELM" template podsight "$chart" -f "$1" 2>&1); then
		echo "rendered, but must be refused"
		return 1
	fi
	grep -F -- "$2" <<<"$out" || { echo "$out"; return 1; }
}
chart_version_matches() {
	local want
	want=$("$agent" --version | awk '{ print $2 }')
	grep -qx "appVersion: \"$want\"" "$chart/Chart.yaml" || { echo "agent $want, chart $(grep appVersion "$chart/Chart.yaml")"; return 1; }
}

# ---- config: what the ConfigMap holds, judged by the agent itself -------------------------------------
step_config() {
	note "config: every rendered config.json is accepted by podsight --validate-config"
	render_matrix || { check "render the matrix" false; return; }
	local f
	for f in "$work"/matrix/*.yaml; do
		check "agent accepts config.json of $(basename "$f")" agent_accepts "$f"
	done
	check "values.schema.json accepts exactly what the agent accepts for config.programs.tcp" \
		node tests/packaging/schema-agrees.mjs "$HELM" "$chart" "$agent" "$work" docs/configuration.md
	# Values the chart renders but the agent must refuse: the check has teeth.
	for f in tests/packaging/invalid/*.yaml; do
		grep -q '^# expect-agent-error: ' "$f" || continue
		check "agent refuses config.json of $(basename "$f")" agent_refuses "$f" "$(sed -n 's/^# expect-agent-error: //p' "$f")"
	done
}
agent_accepts() {
	field "$1" ConfigMap 'o.data["config.json"]' >"$work/config.json" || return 1
	# The agent reads the TLS and auth files named in its config at validation: the Secrets' files.
	with_secret_files "$1" "$work/config.json" || return 1
	"$agent" --validate-config --config "$work/config.json"
}
agent_refuses() {
	local out rc=0
	render "$work/refused.yaml" -f "$1" || return 1
	field "$work/refused.yaml" ConfigMap 'o.data["config.json"]' >"$work/config.json" || return 1
	out=$("$agent" --validate-config --config "$work/config.json" 2>&1) || rc=$?
	echo "$out"
	[[ $rc -eq 2 ]] && grep -qF -- "$2" <<<"$out"
}

# with_secret_files RENDERED CONFIG_JSON: the files of the rendered DaemonSet's Secret volumes (a
# certificate for 127.0.0.1 and its key, a token, a password; made once in $work/secrets), and
# CONFIG_JSON's paths under their mount paths pointed there.
with_secret_files() {
	local s=$work/secrets mounts m
	if [[ ! -f $s/password ]]; then
		mkdir -p "$s"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=podsight \
			-addext subjectAltName=IP:127.0.0.1 -keyout "$s/tls.key" -out "$s/tls.crt" 2>/dev/null || return 1
		printf 'token-%s\n' "$RANDOM$RANDOM" >"$s/token"
		printf 'password-%s\n' "$RANDOM$RANDOM" >"$s/password"
	fi
	# The chart names the items tls.crt, tls.key, token and password.
	mounts=$(field "$1" DaemonSet 'o.spec.template.spec.containers[0].volumeMounts
		.filter((m) => o.spec.template.spec.volumes.find((v) => v.name === m.name).secret).map((m) => m.mountPath).join(" ")')
	for m in $mounts; do sed -i "s#\"$m/#\"$s/#g" "$2"; done
}

# ---- deploy/ -------------------------------------------------------------------------------------------
step_deploy() {
	note "deploy: deploy/ is exactly what scripts/render-deploy.sh makes from the chart"
	check "deploy/ matches the chart (else run scripts/render-deploy.sh)" bash -c \
		"scripts/render-deploy.sh '$work/deploy' && diff -ru deploy '$work/deploy'"
	check "deploy/kubernetes/podsight.yaml validates" \
		node tests/packaging/validate-objects.mjs deploy/kubernetes/podsight.yaml --expect-capabilities "$default_caps"
	check "deploy/kubernetes/podsight-monitoring.yaml validates" \
		node tests/packaging/validate-objects.mjs deploy/kubernetes/podsight-monitoring.yaml
}

# ---- rules ---------------------------------------------------------------------------------------------
step_rules() {
	note "rules: promtool check rules, promtool test rules, a firing unit test for every alert"
	check "promtool check rules" promtool check rules deploy/prometheus/podsight.rules.yaml
	check "promtool test rules" promtool test rules tests/packaging/rules/podsight.rules.test.yaml
	check "every alert has a firing unit test" node tests/packaging/rules-coverage.mjs \
		deploy/prometheus/podsight.rules.yaml tests/packaging/rules/podsight.rules.test.yaml
}

# ---- capabilities --------------------------------------------------------------------------------------
step_capabilities() {
	note "capabilities: each family with exactly the set the chart grants for it, and none of it spare"
	render_matrix || { check "render the matrix" false; return; }
	local families f others g caps
	check "bpfStats adds CAP_SYS_ADMIN and nothing else" stats_adds_sys_admin
	open_connections_checks
	families=$(field "$work/matrix/defaults.yaml" ConfigMap 'Object.keys(JSON.parse(o.data["config.json"]).programs).join(" ")')
	check "the chart's config.programs names every family the agent has" chart_names_every_family "$families"
	for f in $families; do
		others=()
		for g in $families; do [[ $g == "$f" ]] || others+=(--set "config.programs.$g.enabled=false"); done
		local overlay=()
		if [[ -f tests/packaging/family-values/$f.yaml ]]; then
			make_test_veth
			sed "s/@VETH@/$veth_name/g" "tests/packaging/family-values/$f.yaml" >"$work/family-values-$f.yaml"
			overlay=(-f "$work/family-values-$f.yaml")
		fi
		render "$work/family-$f.yaml" --set "config.programs.$f.enabled=true" "${others[@]}" "${overlay[@]}" || {
			check "family $f renders alone" false
			continue
		}
		caps=$(capabilities_of "$work/family-$f.yaml")
		host_config_of "$work/family-$f.yaml" "$work/family-$f.json"
		check "family $f: passes --check as full root (the baseline)" "$agent" --check --config "$work/family-$f.json" --log-level error
		check "family $f: passes --check with only $caps" with_caps "$caps" "$agent" --check --config "$work/family-$f.json" --log-level error
		local c
		for c in ${caps//,/ }; do
			check "family $f: fails --check without CAP_$c" fails_without "$(without "$caps" "$c")" "$work/family-$f.json"
		done
	done
}
# A family the agent has but the chart's values leave out would run with the agent's default
# enablement and without its capabilities: the agent's --check lists every family it has.
chart_names_every_family() {
	local have
	have=$("$agent" --check --log-level error 2>/dev/null | awk '$1 == "program" { print $2 }' | sort | paste -sd' ')
	echo "agent families: $have; chart config.programs: $1"
	[[ $have == "$(tr ' ' '\n' <<<"$1" | sort | paste -sd' ')" ]] ||
		{ echo "add the missing families to config.programs in helm/podsight/values.yaml (and their capabilities in templates/_helpers.tpl)"; return 1; }
}
stats_adds_sys_admin() {
	render "$work/stats.yaml" --set bpfStats=true || return 1
	local base got
	base=$(capabilities_of "$work/matrix/defaults.yaml")
	got=$(capabilities_of "$work/stats.yaml")
	echo "defaults $base, with bpfStats $got"
	[[ $(tr , '\n' <<<"$base,SYS_ADMIN" | sort | paste -sd,) == "$(tr , '\n' <<<"$got" | sort | paste -sd,)" ]]
}
# The tcp family's two ways to read bytes of open connections, under the capabilities the chart grants
# for each: a connection held open in a network namespace of its own by an unprivileged user (as a
# pod's is) must show its exact bytes before it closes. iter_tcp finds the namespace through
# /proc/<pid>/ns/net (hostPID; the agent here shares the host's PID namespace as hostPID would),
# which takes CAP_SYS_PTRACE to open and CAP_SYS_ADMIN to enter; sk_storage needs neither.
open_connections_checks() {
	local off=(--set config.programs.exec.enabled=false --set config.programs.cgroup_skb.enabled=false
		--set config.programs.xdp.enabled=false)
	render "$work/iter-tcp.yaml" "${off[@]}" --set hostPID=true --set config.programs.tcp.open_connections=iter_tcp || {
		check "tcp with hostPID renders" false
		return
	}
	render "$work/sk-storage.yaml" "${off[@]}" --set config.programs.tcp.open_connections=sk_storage || {
		check "tcp with sk_storage renders" false
		return
	}
	local base got
	base=$(capabilities_of "$work/sk-storage.yaml")
	got=$(capabilities_of "$work/iter-tcp.yaml")
	check "hostPID adds CAP_SYS_ADMIN and CAP_SYS_PTRACE and nothing else (tcp alone: $base -> $got)" \
		test "$(tr , '\n' <<<"$base,SYS_ADMIN,SYS_PTRACE" | sort | paste -sd,)" = "$got"
	# Some kernels name the socket storage iterator in their BTF and refuse to load it (a 6.18 VM
	# refuses every map iterator with EPERM): there, forced sk_storage must fail and say why.
	host_config_of "$work/sk-storage.yaml" "$work/sk-storage.json"
	local sk_check # --check fails when the family does: its output, not its status, tells
	sk_check=$(with_caps "$base" "$agent" --check --config "$work/sk-storage.json" --log-level error 2>/dev/null)
	if grep -q 'refuses socket storage iterator' <<<"$sk_check"; then
		check "sk_storage with $base on a kernel that refuses its iterator: the tcp family fails and says why" \
			sk_storage_refused "$work/sk-storage.json" "$base"
	else
		check "sk_storage with $base: open connection's bytes exact" open_bytes "$work/sk-storage.yaml" "$base" 54321
	fi
	check "iter_tcp with $got (hostPID): open connection's bytes exact" open_bytes "$work/iter-tcp.yaml" "$got" 54321
	check "iter_tcp without CAP_SYS_PTRACE: open connection's bytes not read" \
		open_bytes "$work/iter-tcp.yaml" "$(without "$got" SYS_PTRACE)" 0
	check "iter_tcp without CAP_SYS_ADMIN: open connection's bytes not read" \
		open_bytes "$work/iter-tcp.yaml" "$(without "$got" SYS_ADMIN)" 0
}
# sk_storage_refused CONFIG CAPS: --check with CONFIG under CAPS fails, its tcp row failed with the reason.
sk_storage_refused() {
	local out
	out=$(with_caps "$2" "$agent" --check --config "$1" --log-level error 2>&1) && {
		echo "--check passed: $out"
		return 1
	}
	echo "$out"
	grep -E '^program tcp +FAIL +failed: open_connections sk_storage with variant (tp_btf|fentry): the kernel refuses socket storage iterator' <<<"$out"
}
# open_bytes RENDERED CAPS WANT: the agent with RENDERED's config limited to CAPS; a process of uid
# 65534 in a cgroup and network namespace of its own sends 54321 bytes over loopback and keeps the
# connection open; the scrape must show WANT sent and received bytes for that cgroup.
open_bytes() {
	local port pid cg wl ready sent received
	port=$(free_port)
	host_config_of "$1" "$work/open-bytes.json" "127.0.0.1:$port"
	setpriv_for "$2"
	"${SETPRIV[@]}" "$agent" --config "$work/open-bytes.json" >"$work/open-bytes-agent.log" 2>&1 &
	pid=$!
	wait_ready "$port" || { kill "$pid"; wait "$pid"; cat "$work/open-bytes-agent.log"; return 1; }
	cg=/podsight-packaging-open-$$-$RANDOM
	mkdir "$(host_cgroup2)$cg"
	wl=$(mktemp -d /tmp/podsight-open-bytes.XXXXXX)
	chmod 777 "$wl"
	ready=$wl/ready
	# The workload: python3 from /usr/bin (a user's shims may not be readable by uid 65534).
	cat >"$wl/wl.py" <<-'PY'
		import socket, sys, time
		srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
		cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
		cli.sendall(b"x" * 54321)
		got = 0
		while got < 54321: got += len(conn.recv(65536))
		open(sys.argv[1], "w").write("sent")
		time.sleep(300)
	PY
	chmod 644 "$wl/wl.py"
	bash -c 'echo $BASHPID >"$0/cgroup.procs"; exec unshare -n sh -c "ip link set lo up && exec setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 $1 $2"' \
		"$(host_cgroup2)$cg" "$wl/wl.py" "$ready" &
	local wpid=$! i
	for i in $(seq 100); do [[ -s $ready ]] && break; sleep 0.1; done
	local scrape sent_ok=no
	scrape=$(http "$port" /metrics)
	[[ -s $ready ]] && sent_ok=yes
	kill $(cat "$(host_cgroup2)$cg/cgroup.procs") "$pid" 2>/dev/null
	wait "$wpid" "$pid" 2>/dev/null
	rmdir "$(host_cgroup2)$cg"
	rm -rf "$wl"
	sent=$(awk -v c="cgroup=\"$cg\"" 'index($0, c) && /^podsight_tcp_sent_bytes_total\{.*direction="outbound"/ { print $2 }' <<<"$scrape")
	received=$(awk -v c="cgroup=\"$cg\"" 'index($0, c) && /^podsight_tcp_received_bytes_total\{.*direction="inbound"/ { print $2 }' <<<"$scrape")
	echo "workload sent its bytes: $sent_ok; scraped sent ${sent:-none}, received ${received:-none}, want $3 each"
	grep -i 'setns\|not updated\|skipped' "$work/open-bytes-agent.log" | head -3
	[[ $sent_ok == yes && ${sent:-x} == "$3" && ${received:-x} == "$3" ]]
}
# A veth pair of our own ($veth_name), made once, for families that attach to interfaces: the
# checks must not touch the machine's real network devices.
veth_name=""
make_test_veth() {
	[[ -z $veth_name ]] || return 0
	veth_name=pkv$(tr -dc a-z </dev/urandom | head -c 8)
	ip link add "$veth_name" type veth peer name "${veth_name}p"
	ip link set "$veth_name" up
	ip link set "${veth_name}p" up
	cleanups+=("ip link del $veth_name")
}
fails_without() {
	local out rc=0
	out=$(with_caps "$1" "$agent" --check --config "$2" --log-level error 2>&1) || rc=$?
	echo "$out"
	[[ $rc -ne 0 ]] && grep -q '^program .*FAIL' <<<"$out"
}

# ---- the integration suite again, every agent with the chart's capabilities only ---------------------
step_suite() {
	note "suite: ctest -L integration with every agent limited to the chart's capabilities"
	render_matrix || { check "render the matrix" false; return; }
	render "$work/stats.yaml" --set bpfStats=true || return
	local caps stats_caps
	caps=$(capabilities_of "$work/matrix/defaults.yaml")
	stats_caps=$(capabilities_of "$work/stats.yaml")
	note "PODSIGHT_TEST_AGENT_CAPS=$caps PODSIGHT_TEST_AGENT_CAPS_BPF_STATS=$stats_caps"
	check "integration suite with only the chart's capabilities" bash -c "
		cd '$build' && PODSIGHT_TEST_AGENT_CAPS='$caps' PODSIGHT_TEST_AGENT_CAPS_BPF_STATS='$stats_caps' \
			ctest -L integration --output-on-failure --timeout 600"
}

# ---- the helm test's script against a real agent -----------------------------------------------------
step_helmtest() {
	note "helmtest: the chart's helm test script (busybox sh, as in its pod) against real agents"
	command -v busybox >/dev/null || { check "busybox is installed (scripts/deps.sh)" false; return; }
	render_matrix || { check "render the matrix" false; return; }
	local port pid caps
	caps=$(capabilities_of "$work/matrix/defaults.yaml")
	helmtest_agent "$caps"
	check "agent with the chart's config and capabilities serves" wait_ready "$port"
	check "helm test passes against a ready agent" helm_test "$port" 0 "1 agents, 0 failed, 0 degraded"
	kill "$pid"
	wait "$pid"
	check "helm test fails when no agent answers" helm_test "$port" 1 "1 agents, 1 failed"
	# An agent whose Kubernetes API is unreachable is ready, but degraded: the test passes and says so.
	helmtest_agent "$caps" unreachable_api
	wait_ready "$port"
	check "helm test passes against a degraded agent and names it" helm_test "$port" 0 "1 agents, 0 failed, 1 degraded"
	kill "$pid"
	wait "$pid"
	# An agent that cannot attach anything (no capabilities) is not ready: the test must say so.
	helmtest_agent ""
	wait_ready "$port"
	check "helm test fails against an agent that is not ready" helm_test "$port" 1 "/readyz not 200"
	kill "$pid"
	wait "$pid"
	# /metrics over TLS with credentials, as the chart renders it for tests/packaging/values/tls-*.yaml:
	# the test pod's environment (scheme, credentials) and the agent's config, the Secrets' files in
	# place of the mounts.
	command -v openssl >/dev/null && command -v curl >/dev/null || { check "openssl and curl are installed (scripts/deps.sh)" false; return; }
	local v wrong
	for v in tls-bearer tls-basic-podmonitor; do
		wrong=PODSIGHT_TOKEN=wrong
		[[ $v == *basic* ]] && wrong=PODSIGHT_BASIC_PASSWORD=wrong
		helmtest_secure_agent "$caps" "tests/packaging/values/$v.yaml" || { check "$v: agent with the chart's TLS config starts" false; continue; }
		check "$v: agent serves TLS" tls_ready_or_log "$port" "$work/helmtest-agent.log"
		check "$v: helm test passes with the pod's scheme and credentials" helm_test_env "$port" 0 "1 agents, 0 failed, 0 degraded"
		check "$v: helm test fails with a wrong ${wrong%%=*}" helm_test_env "$port" 1 "/metrics" "$wrong"
		check "$v: helm test fails over plain HTTP" helm_test_env "$port" 1 "/readyz not 200" PODSIGHT_SCHEME=http
		kill "$pid"
		wait "$pid"
	done
}
# helmtest_secure_agent CAPS VALUES: the chart rendered with VALUES (TLS and auth), its config's
# Secret mount paths replaced by directories holding a fresh certificate, token and password; the
# agent on a free port (sets $port, $pid) and $helmtest_env, the test pod's PODSIGHT_* environment
# with the Secrets' values.
helmtest_secure_agent() {
	local s=$work/secrets
	render "$work/secure.yaml" -f "$2" || return 1
	port=$(free_port)
	host_config_of "$work/secure.yaml" "$work/secure.json" "127.0.0.1:$port"
	with_secret_files "$work/secure.yaml" "$work/secure.json" || return 1
	grep -q "\"$s/" "$work/secure.json" || { echo "no Secret files in the render of $2"; return 1; }
	helmtest_env=()
	local e
	for e in $(field "$work/secure.yaml" Pod 'o.spec.containers[0].env.map((e) => e.name + "=" + (e.value ?? "@" + e.valueFrom.secretKeyRef.key)).join(" ")'); do
		case $e in
		*=@password) e=${e%@password}$(cat "$s/password") ;;
		*=@token) e=${e%@token}$(cat "$s/token") ;;
		*=@*) echo "unknown Secret key in $e"; return 1 ;;
		esac
		helmtest_env+=("$e")
	done
	setpriv_for "$1"
	"${SETPRIV[@]}" "$agent" --config "$work/secure.json" >"$work/helmtest-agent.log" 2>&1 &
	pid=$!
	cleanups+=("kill $pid; wait $pid")
}
# helm_test_env PORT WANT_RC WANT_TEXT [VAR=VALUE...]: helm_test with the test pod's environment
# ($helmtest_env, PODSIGHT_SERVICE/PORT set here) and overrides.
helm_test_env() {
	local port=$1 rc=$2 text=$3 e
	shift 3
	(
		for e in "${helmtest_env[@]}" "$@"; do export "${e?}"; done
		helmtest_curl=yes
		helm_test "$port" "$rc" "$text"
	)
}
# helmtest_agent CAPS [EDIT]: the agent with the chart's default config on a free port (sets the
# caller's $port and $pid), limited to CAPS; EDIT, a function, may change the config file first.
helmtest_agent() {
	port=$(free_port)
	host_config_of "$work/matrix/defaults.yaml" "$work/helmtest.json" "127.0.0.1:$port"
	[[ -z ${2:-} ]] || "$2" "$work/helmtest.json"
	setpriv_for "$1"
	"${SETPRIV[@]}" "$agent" --config "$work/helmtest.json" >"$work/helmtest-agent.log" 2>&1 &
	pid=$!
	cleanups+=("kill $pid; wait $pid")
}
# unreachable_api CONFIG: points the agent's Kubernetes metadata at an API server that is not there.
unreachable_api() {
	local kubeconfig=$work/unreachable.kubeconfig
	printf '%s\n' "apiVersion: v1" "kind: Config" "current-context: gone" \
		"clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:$(free_port)'}}]" \
		"contexts: [{name: gone, context: {cluster: gone, user: agent}}]" \
		"users: [{name: agent, user: {token: unused}}]" >"$kubeconfig"
	node -e '
		const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		c.kubernetes = { ...c.kubernetes, source: "kubeconfig", kubeconfig: process.argv[2], node_name: "helmtest" };
		require("fs").writeFileSync(process.argv[1], JSON.stringify(c, null, 2));' "$1" "$kubeconfig"
}
helm_test() { # helm_test PORT WANT_RC WANT_TEXT
	local out rc=0
	# Only busybox's applets on PATH, as in the test pod's image.
	if [[ ! -d $work/busybox ]]; then
		mkdir -p "$work/busybox"
		busybox --install -s "$work/busybox"
	fi
	# Under TLS the test pod's image has curl (values tests.tlsImage): $helmtest_curl adds it.
	if [[ -n ${helmtest_curl:-} && ! -e $work/busybox-curl/curl ]]; then
		cp -a "$work/busybox" "$work/busybox-curl"
		ln -s "$(command -v curl)" "$work/busybox-curl/curl"
	fi
	local path=$work/busybox
	[[ -z ${helmtest_curl:-} ]] || path=$work/busybox-curl
	out=$(PATH=$path PODSIGHT_SERVICE=127.0.0.1 PODSIGHT_PORT=$1 busybox sh "$chart/files/helm-test.sh" 2>&1) || rc=$?
	echo "$out"
	{ [[ $2 -eq 0 && $rc -eq 0 ]] || [[ $2 -ne 0 && $rc -ne 0 ]]; } && grep -qF -- "$3" <<<"$out"
}

# ---- the container image --------------------------------------------------------------------------------
step_image() {
	note "image: podman build of the Dockerfile, contents, and a run as the chart runs it"
	source tests/packaging/image.sh
	image_checks
}

steps=("$@")
((${#steps[@]})) || steps=(chart config deploy rules capabilities suite helmtest image)
[[ $(id -u) -eq 0 ]] || { echo "packaging: run as root (the agent loads BPF programs)" >&2; exit 1; }
[[ -x $agent ]] || { echo "packaging: $agent missing: run scripts/build.sh" >&2; exit 1; }
t_all=$SECONDS
if ! packaging_tools >"$work/tools.log" 2>&1; then
	cat "$work/tools.log"
	echo "packaging: cannot set up helm/kubectl/npm packages"
	echo "packaging: 0 passed, 1 failed"
	exit 1
fi
for s in "${steps[@]}"; do
	if [[ " ${PODSIGHT_PACKAGING_SKIP:-} " == *" $s "* ]]; then
		[[ ${CI:-} == true ]] && { echo "packaging: CI=true ignores PODSIGHT_PACKAGING_SKIP" >&2; } || { note "$s skipped (PODSIGHT_PACKAGING_SKIP)"; continue; }
	fi
	t=$SECONDS
	"step_$s"
	note "$s took $((SECONDS - t)) s"
done
note "all steps took $((SECONDS - t_all)) s"
if ((failed)); then
	echo "packaging: failed checks:"
	printf '  %s\n' "${failures[@]}"
fi
echo "packaging: $passed passed, $failed failed"
((failed == 0))
