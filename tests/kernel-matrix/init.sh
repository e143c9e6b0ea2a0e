#!/bin/sh
# /init of a kernel-matrix VM (busybox sh; scripts/kernel-matrix.sh builds the initramfs). Mounts what
# the agent needs, runs `podsight --check`, starts the agent, and for each program family described in
# /matrix/families/*.sh checks the variant it chose and the exact count of a known workload. Every
# result is a console line starting with "MATRIX "; the host parses those. Then powers off.
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up

KERNEL=$(uname -r)
PORT=10795
result() { echo "MATRIX kernel=$KERNEL $*"; }
failed() { result "$@" result=FAIL; }

# in_cgroup NAME COMMAND...: runs COMMAND in the fresh cgroup /NAME (the subshell moves itself there,
# so only what COMMAND starts is counted in it) and waits for it.
in_cgroup() {
	mkdir -p "/sys/fs/cgroup/$1"
	(
		echo 0 >"/sys/fs/cgroup/$1/cgroup.procs" || exit 1
		shift
		"$@"
	)
}

# run_times N COMMAND...: runs COMMAND N times (each a fork and an exec).
run_times() {
	n=$1
	shift
	i=0
	while [ "$i" -lt "$n" ]; do
		"$@" || return 1
		i=$((i + 1))
	done
}

# http_get PATH: the whole response (status line, headers, body), whatever the status.
http_get() {
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" | nc 127.0.0.1 "$PORT"
}

# series_value FILE METRIC MATCHER...: the sum of the series of METRIC whose labels hold every MATCHER
# (label="value"), and how many there were, in the scrape saved in FILE.
series_value() {
	file=$1
	shift
	awk -v metric="$1" -v matchers="$(shift; echo "$*")" '
		BEGIN { n = split(matchers, want, " ") }
		/^#/ { next }
		{
			name = $0; sub(/[{ ].*/, "", name)
			if (name != metric) next
			labels = ""
			if (index($0, "{") == length(name) + 1) { labels = substr($0, length(name) + 1); sub(/} .*/, "}", labels) }
			for (i = 1; i <= n; i++) if (index(labels, "{" want[i]) == 0 && index(labels, "," want[i]) == 0) next
			sum += $NF; count++
		}
		END { printf "%d %d\n", sum, count }' "$file"
}

echo "MATRIX-BEGIN kernel=$KERNEL"

podsight --check --log-level error >/tmp/check.txt 2>&1
rc=$?
cat /tmp/check.txt
for row in btf kprobes fentry; do
	detail=$(awk -v r="$row" '$1 == r { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' /tmp/check.txt | tr ' ' '_')
	result "feature=$row detail=${detail:-missing}"
done
if [ "$rc" -eq 0 ]; then result "check=podsight--check result=PASS"; else failed "check=podsight--check rc=$rc"; fi

for f in /matrix/families/*.sh; do
	(. "$f" && command -v setup >/dev/null && setup) || true
done

podsight --config /matrix/config.json --log-format text --log-level info >/tmp/agent.log 2>&1 &
agent=$!
ready=""
i=0
while [ "$i" -lt 240 ]; do
	if http_get /readyz >/tmp/readyz 2>/dev/null && grep -q '"status"' /tmp/readyz; then
		ready=yes
		break
	fi
	kill -0 "$agent" 2>/dev/null || break
	sleep 0.5
	i=$((i + 1))
done
[ -n "$ready" ] || failed "agent=start"
cat /tmp/readyz

# Every family the agent has needs expectations here: a family without a file would go unchecked.
for name in $(tr -d '\n' </tmp/readyz | grep -o '"name":"[^"]*"' | sed 's/"name":"\(.*\)"/\1/'); do
	[ -f "/matrix/families/$name.sh" ] || failed "family=$name expectations=missing(tests/kernel-matrix/families/$name.sh)"
done

for f in /matrix/families/*.sh; do
	(
		. "$f"
		# {"error":...,"name":"exec","state":"attached","variant":"tp_btf"} (keys sorted by the agent)
		entry=$(tr -d '\n' </tmp/readyz | grep -o "{[^{}]*\"name\":\"$family\"[^{}]*}")
		state=$(echo "$entry" | sed -n 's/.*"state":"\([^"]*\)".*/\1/p')
		variant=$(echo "$entry" | sed -n 's/.*"variant":"\([^"]*\)".*/\1/p')
		want=$(best_variant "$KERNEL")
		if [ "$state" = attached ] && [ "$variant" = "$want" ]; then
			result "family=$family variant=$variant want=$want state=$state result=PASS"
		else
			failed "family=$family variant=${variant:-none} want=$want state=${state:-absent}"
			exit 1
		fi
		wget -q -O /tmp/metrics.before "http://127.0.0.1:$PORT/metrics" || {
			failed "family=$family scrape=failed"
			exit 1
		}
		workload || {
			failed "family=$family workload=failed"
			exit 1
		}
		wget -q -O /tmp/metrics "http://127.0.0.1:$PORT/metrics" || {
			failed "family=$family scrape=failed"
			exit 1
		}
		echo "$expect" | while read -r line; do
			[ -n "$line" ] || continue
			value=${line##*= }
			selector=${line% = *}
			set -- $selector
			got=$(series_value /tmp/metrics "$@")
			# "= +N": the series grew by exactly N during the workload (what else runs may count too)
			case "$value" in
			+*)
				before=$(series_value /tmp/metrics.before "$@")
				got="$((${got% *} - ${before% *})) ${got#* }"
				;;
			esac
			sel=$(echo "$selector" | tr ' ' ',')
			if [ "$got" = "${value#+} 1" ]; then
				result "family=$family series=$sel got=${got% *} want=$value result=PASS"
			else
				result "family=$family series=$sel got=${got% *} series_found=${got#* } want=$value result=FAIL"
			fi
		done
	)
done

kill -TERM "$agent"
wait "$agent"
rc=$?
if [ "$rc" -eq 0 ]; then result "stop=SIGTERM rc=0 result=PASS"; else failed "stop=SIGTERM rc=$rc"; fi
echo "---- agent log"
cat /tmp/agent.log
echo "MATRIX-END kernel=$KERNEL"
poweroff -f
