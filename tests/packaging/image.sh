# The container image step of tests/packaging/run.sh (sourced; uses its check/render/http helpers).
# Builds the real Dockerfile with podman (no Docker engine here), checks what the runtime image holds,
# and runs it the way the chart's DaemonSet runs it (tests/packaging/podman-args.mjs turns the
# rendered pod spec into podman arguments): only the chart's capabilities, read-only root, the host
# mounts, the ConfigMap, host network, the memory limit; not --privileged.
#
# podman keeps its images, layers and state under .cache/packaging/containers (ignored by git): the
# debootstrap'ed base image and the build's layer cache make a second run fast. The base image is
# Debian bookworm made locally with debootstrap from Debian's archive and tagged as the Dockerfile's
# default BUILDER_IMAGE, so no container registry is needed.

image_tag=localhost/podsight:packaging-test
podman_state=$packaging_cache/containers
PODMAN=(podman --root "$podman_state/storage" --runroot "$podman_state/run" --tmpdir "$podman_state/tmp"
	--runtime runc --cgroup-manager cgroupfs --events-backend file)
# Raising rlimits is not permitted in these VMs (no CAP_SYS_RESOURCE): keep the runtime's hands off.
PODMAN_RUN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

image_base() {
	"${PODMAN[@]}" image exists docker.io/library/debian:bookworm-slim && return 0
	local rootfs=$work/bookworm-rootfs
	echo "debootstrap --variant=minbase bookworm (once; then cached in $podman_state)"
	debootstrap --variant=minbase bookworm "$rootfs" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; return 1; }
	tar -C "$rootfs" -c . | "${PODMAN[@]}" import - docker.io/library/debian:bookworm-slim
	rm -rf "$rootfs"
}

image_build() {
	"${PODMAN[@]}" build --isolation=chroot --pull=never -t "$image_tag" \
		--build-arg PODSIGHT_REVISION="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" . 2>&1 | tail -15
	local rc=${PIPESTATUS[0]}
	# Builder stages of earlier runs (about 1.2 GB each) go; today's stay as the layer cache.
	"${PODMAN[@]}" image prune -f --filter until=24h >/dev/null 2>&1
	return "$rc"
}

# Every file of the runtime image: the agent, the libraries it links, the loader and its cache, the
# Debian copyright files; nothing that can run a command.
image_contents() {
	local ctr list bad
	ctr=$("${PODMAN[@]}" create "$image_tag") || return 1
	"${PODMAN[@]}" export "$ctr" | tar -tv >"$work/image-files.txt"
	"${PODMAN[@]}" rm "$ctr" >/dev/null
	# Entries podman itself creates in every container filesystem are left out.
	list=$(awk '$1 !~ /^d/ { print $NF == "->" ? $(NF-2) : $6 }' "$work/image-files.txt" | sed 's|^\./||' |
		grep -vE '^(etc/(hosts|hostname|resolv\.conf|passwd|group)|run/.*|dev/.*|proc/.*|sys/.*)$')
	echo "$list" | sed 's/^/  /'
	bad=$(echo "$list" | grep -vE '^(usr/bin/podsight|usr/lib/[a-z0-9_-]+-linux-gnu/lib[^/]+\.so[.0-9]*|usr/lib64/ld-linux[^/]*\.so\.[0-9]+|lib|lib64|etc/ld\.so\.cache|usr/share/doc/[^/]+/copyright)$')
	[[ -z $bad ]] || { echo "unexpected files in the runtime image:"; echo "$bad"; return 1; }
	# Names of shells, package managers, compilers and linkers anywhere in the image.
	bad=$(echo "$list" | grep -E '(^|/)(sh|bash|dash|ash|busybox|apt|apt-get|dpkg|gcc|g\+\+|cc|c\+\+|clang[^/]*|ld|ld\.bfd|ld\.gold|as|make|perl|python3?)$')
	[[ -z $bad ]] || { echo "found in the image: $bad"; return 1; }
	echo "image size: $("${PODMAN[@]}" image inspect "$image_tag" --format '{{.Size}}') bytes"
}

image_no_shell() {
	local sh out
	for sh in /bin/sh /bin/bash /usr/bin/sh; do
		if out=$("${PODMAN[@]}" run --rm "${PODMAN_RUN_LIMITS[@]}" --entrypoint "$sh" "$image_tag" -c true 2>&1); then
			echo "$sh ran in the image: $out"
			return 1
		fi
	done
	"${PODMAN[@]}" run --rm "${PODMAN_RUN_LIMITS[@]}" "$image_tag" --version
}

image_run() {
	local port cg name comm n=29 args text value revision
	port=$(free_port)
	name=podsight-packaging-$$
	cg=$(host_cgroup2)
	# The chart as a user of this host would install it (hybrid cgroup path, a free port, the local image).
	render "$work/image-chart.yaml" --set "hostPaths.cgroup2=$cg" --set "port=$port" \
		--set image.repository=localhost/podsight --set image.tag=packaging-test || return 1
	node tests/packaging/podman-args.mjs "$work/image-chart.yaml" "$work/image-config" "$(hostname)" >"$work/podman-args.json" || return 1
	mapfile -t args < <(node -e 'for (const a of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(a)' "$work/podman-args.json")
	echo "podman run ${args[*]}"
	"${PODMAN[@]}" run -d --name "$name" "${PODMAN_RUN_LIMITS[@]}" "${args[@]}" >/dev/null || return 1
	cleanups+=("image_remove $name")
	wait_ready "$port" || { "${PODMAN[@]}" logs "$name"; return 1; }
	text=$(http "$port" /readyz)
	echo "/readyz: $text"
	[[ $(head -1 <<<"$text") == 200 ]] || { "${PODMAN[@]}" logs "$name"; return 1; }
	grep -q '"status":"ready"' <<<"$text" || return 1
	# Exactly n executions in a fresh cgroup of the host, counted and labelled by the agent in the
	# container (cgroup ids resolved through the read-only host cgroup2 mount).
	mkdir "$cg/podsight-image-$$" || return 1
	cleanups+=("rmdir '$cg/podsight-image-$$'")
	comm=pimg$RANDOM
	cp /bin/true "$work/$comm"
	for ((i = 0; i < n; i++)); do
		(echo $BASHPID >"$cg/podsight-image-$$/cgroup.procs" && exec "$work/$comm")
	done
	text=$(http "$port" /metrics)
	[[ $(head -1 <<<"$text") == 200 ]] || return 1
	tail -n +2 <<<"$text" >"$work/image-scrape.txt"
	value=$(grep -F "cgroup=\"/podsight-image-$$\",comm=\"$comm\"}" "$work/image-scrape.txt" | awk '{ print $NF }')
	echo "podsight_process_execs_total{cgroup=/podsight-image-$$,comm=$comm} = ${value:-none} (want $n)"
	[[ $value == "$n" ]] || return 1
	# cgroup_skb in the container must attach at the host's cgroup2 root (cgroup_root), not at the
	# container's own cgroup: packets a host cgroup sends are then counted, exactly.
	if grep -q '^# TYPE podsight_network_packets_total ' "$work/image-scrape.txt"; then
		local k=7 sent
		for ((i = 0; i < k; i++)); do
			(echo $BASHPID >"$cg/podsight-image-$$/cgroup.procs" && exec bash -c 'echo x >/dev/udp/127.0.0.1/9')
		done
		sent=$(http "$port" /metrics | grep -F "cgroup=\"/podsight-image-$$\",direction=\"egress\"}" |
			grep '^podsight_network_packets_total' | awk '{ print $NF }')
		echo "podsight_network_packets_total{cgroup=/podsight-image-$$,direction=egress} = ${sent:-none} (want $k)"
		[[ $sent == "$k" ]] || return 1
	else
		echo "no cgroup_skb family in this build: network counting in the container not checked"
	fi
	revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	grep -F "revision=\"$revision\"" "$work/image-scrape.txt" | grep -q '^podsight_build_info' ||
		{ echo "podsight_build_info does not name revision $revision"; return 1; }
	promtool check metrics <"$work/image-scrape.txt" || return 1
	echo "container memory (podman stats): $("${PODMAN[@]}" stats --no-stream --format '{{.MemUsage}}' "$name" 2>&1)"
	# What `kubectl logs` shows: one JSON object per line.
	"${PODMAN[@]}" logs "$name" 2>&1 | node -e '
		const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
		for (const l of lines) JSON.parse(l);
		if (!lines.some((l) => JSON.parse(l).msg === "program family attached")) process.exit(1);
		console.log(`${lines.length} JSON log lines`);'
}

image_remove() { "${PODMAN[@]}" rm -f "$1"; }

# Why the chart sets seccomp Unconfined: under podman's default profile, bpf(2) needs CAP_SYS_ADMIN,
# so the agent with the chart's capabilities cannot load. If a runtime update changes that, this
# fails and docs/security.md ("Seccomp") should be revisited.
image_default_seccomp_blocks_bpf() {
	local port name=podsight-packaging-seccomp-$$ args text
	port=$(free_port)
	render "$work/seccomp-chart.yaml" --set "hostPaths.cgroup2=$(host_cgroup2)" --set "port=$port" \
		--set image.repository=localhost/podsight --set image.tag=packaging-test --set seccompProfile.type=RuntimeDefault || return 1
	node tests/packaging/podman-args.mjs "$work/seccomp-chart.yaml" "$work/seccomp-config" "$(hostname)" >"$work/seccomp-args.json" || return 1
	mapfile -t args < <(node -e 'for (const a of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(a)' "$work/seccomp-args.json")
	"${PODMAN[@]}" run -d --name "$name" "${PODMAN_RUN_LIMITS[@]}" "${args[@]}" >/dev/null || return 1
	cleanups+=("image_remove $name")
	wait_ready "$port" || return 1
	text=$(http "$port" /readyz)
	echo "/readyz under the runtime's default seccomp profile: $text"
	image_remove "$name" >/dev/null
	[[ $(head -1 <<<"$text") == 503 ]] && grep -q 'Operation not permitted' <<<"$text"
}

image_stop() {
	local name=podsight-packaging-$$ code
	"${PODMAN[@]}" stop -t 10 "$name" >/dev/null || return 1
	code=$("${PODMAN[@]}" inspect "$name" --format '{{.State.ExitCode}}')
	"${PODMAN[@]}" logs "$name" 2>&1 | tail -3
	echo "exit code $code"
	[[ $code == 0 ]] && "${PODMAN[@]}" logs "$name" 2>&1 | grep -q '"msg":"stopped"'
}

image_checks() {
	local t=$SECONDS
	for tool in podman runc debootstrap; do
		command -v "$tool" >/dev/null || { check "$tool is installed (scripts/deps.sh)" false; return; }
	done
	mkdir -p "$podman_state"
	check "base image (debootstrap bookworm, imported)" image_base
	check "podman build of the Dockerfile" image_build || true
	note "image built in $((SECONDS - t)) s"
	"${PODMAN[@]}" image exists "$image_tag" || return
	check "runtime image holds only the agent, its libraries and licences" image_contents
	check "no shell in the image; the agent runs" image_no_shell
	check "image runs as the chart runs it: ready, exact counts, valid scrape, JSON logs" image_run
	check "SIGTERM: the container stops cleanly with exit code 0" image_stop
	check "the runtime's default seccomp profile blocks bpf(2) without CAP_SYS_ADMIN (why the chart says Unconfined)" \
		image_default_seccomp_blocks_bpf
}
