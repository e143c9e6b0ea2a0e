#!/usr/bin/env bash
# Soak: the agent with every program family on (exec, tcp with remote labels, cgroup_skb, xdp) under
# steady exec, TCP and packet load, each from a cgroup of its own, the TCP and packet load from a
# network namespace of its own across a veth the XDP program is attached to. /metrics is scraped every
# second for the whole run; the agent's RSS and open descriptors are read at every scrape.
#
#   scripts/soak.sh [SECONDS]     (default 600; root, after scripts/build.sh)
#
# Fails when
#   - a scrape is lost: no answer within 5 s, a status other than 200, or a body without
#     podsight_build_info (every scrape counts, warm-up included);
#   - memory grows: the median RSS of the last 20 % of the samples exceeds the median of the first
#     20 % by more than SOAK_RSS_TOLERANCE_KIB (default 1024) plus SOAK_RSS_PER_SERIES_KIB (default 4)
#     for each series the scrape gained between those two windows, after a warm-up of the first 10 %
#     (at least 5 samples) that is left out. Medians of many samples, so that one scrape's transient
#     buffers (freed again at once) neither fail nor hide a steady climb. The agent counts the whole
#     host, so other workloads' new cgroups and commands add series, and memory that follows them is
#     no leak (a scrape holds ~1 KiB per series); a leak grows with time at a constant series count;
#   - descriptors grow: the same comparison for the open-fd count, tolerance SOAK_FD_TOLERANCE
#     (default 2: a scrape connection or a scrape-time iterator open at the moment of reading);
#   - a family does not count its load (exec, TCP, cgroup_skb or XDP counters unchanged over the run),
#     a family is not attached, or the agent exits.
# The samples (t, rss_kib, fds, threads, scrape_ok, scrape_ms, series) go to SOAK_OUT (default
# /tmp/podsight-soak-<pid>.csv); the summary to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
agent=${PODSIGHT_AGENT:-${BUILD_DIR:-build}/agent/podsight}
[[ $(id -u) -eq 0 && -x $agent ]] || { echo "soak: run as root after scripts/build.sh ($agent)" >&2; exit 1; }
[[ $secs =~ ^[0-9]+$ && $secs -ge 20 ]] || { echo "soak: SECONDS must be a number >= 20" >&2; exit 1; }
out=${SOAK_OUT:-/tmp/podsight-soak-$$.csv}
work=$(mktemp -d /tmp/podsight-soak.XXXXXX)
ns=podsight-soak-$$
vh=psoak$$h # host side (at most 15 bytes: pids have at most 7 digits)
vn=psoak$$n
b=$((($$ / 64) % 250)) a=$((($$ % 64) * 4))
host_ip=10.239.$b.$((a + 1)) ns_ip=10.239.$b.$((a + 2))
cg2=$(awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo)
cg=$cg2/podsight-soak-$$
loads=() # process group ids of the load generators (each started with setsid)
apid=""

cleanup() {
	local p
	for p in "${loads[@]}"; do kill -- "-$p" 2>/dev/null || true; done
	if [[ -n $apid ]]; then
		kill -TERM "$apid" 2>/dev/null || true
		wait "$apid" 2>/dev/null || true
	fi
	ip netns del "$ns" 2>/dev/null || true # takes the veth pair with it
	for p in exec tcp pkt ""; do
		for _ in $(seq 50); do rmdir "$cg/$p" 2>/dev/null && break; [[ -d $cg/$p ]] || break; sleep 0.1; done
	done
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$cg/exec" "$cg/tcp" "$cg/pkt"
ip netns add "$ns"
ip link add "$vh" type veth peer name "$vn"
ip link set "$vn" netns "$ns"
ip addr add "$host_ip/30" dev "$vh"
ip link set "$vh" up
ip -n "$ns" addr add "$ns_ip/30" dev "$vn"
ip -n "$ns" link set "$vn" up
ip -n "$ns" link set lo up

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/config.json" <<EOF
{"http": {"listen": "$host_ip:$port"}, "cgroup_root": "$cg2", "bpf_stats": true,
 "kubernetes": {"source": "off"}, "log": {"level": "warn"},
 "programs": {"tcp": {"remote": {"enabled": true}},
              "xdp": {"enabled": true, "interfaces": ["$vh"]}}}
EOF
"$agent" --config "$work/config.json" >"$work/agent.log" 2>&1 &
apid=$!
for _ in $(seq 200); do
	python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
		"http://$host_ip:$port/healthz" 2>/dev/null && break
	kill -0 "$apid" 2>/dev/null || { cat "$work/agent.log" >&2; echo "soak: the agent exited" >&2; exit 1; }
	sleep 0.1
done

# load NAME CGROUP [NETNS] -- COMMAND...: runs COMMAND in its own process group, in the cgroup (joined
# before entering the namespace: `ip netns exec` remounts /sys, so the cgroup tree is not there inside).
load() {
	local name=$1 group=$2 netns=$3
	shift 4
	local enter=()
	[[ -n $netns ]] && enter=(ip netns exec "$netns")
	setsid sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$group" "${enter[@]}" "$@" \
		>"$work/load-$name.log" 2>&1 &
	loads+=($!)
}
# exec: ten named copies of true (ten series), about 100 execs a second.
mkdir "$work/bin"
for i in $(seq 0 9); do cp /bin/true "$work/bin/soak$i"; done
load exec "$cg/exec" "" -- bash -c 'while :; do for c in "$1"/*; do "$c"; done; sleep 0.1; done' _ "$work/bin"
# TCP: about 20 HTTP/1.0 connections a second from the namespace to the agent across the veth.
load tcp "$cg/tcp" "$ns" -- bash -c 'while :; do
	if exec 3<>"/dev/tcp/$1/$2"; then printf "GET /healthz HTTP/1.0\r\n\r\n" >&3; cat <&3 >/dev/null; exec 3>&-; fi
	sleep 0.05; done' _ "$host_ip" "$port"
# Packets: 100 pings a second of 512 bytes, and 100 UDP datagrams a second, across the veth.
load ping "$cg/pkt" "$ns" -- ping -q -i 0.01 -s 512 "$host_ip"
load udp "$cg/pkt" "$ns" -- bash -c 'while :; do echo soak >"/dev/udp/$1/9" || true; sleep 0.01; done' _ "$host_ip"

echo "soak: ${secs}s, agent pid $apid on $host_ip:$port, netns $ns, veth $vh, cgroups $cg, samples $out" >&2
python3 - "$secs" "$apid" "http://$host_ip:$port/metrics" "$out" "$cg2" "$cg" "$vh" \
	"${SOAK_RSS_TOLERANCE_KIB:-1024}" "${SOAK_FD_TOLERANCE:-2}" "${SOAK_RSS_PER_SERIES_KIB:-4}" <<'PY'
import os, re, statistics, sys, time, urllib.request

secs, pid, url, out, cg2, cg, veth = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:8]
rss_tol, fd_tol, per_series = int(sys.argv[8]), int(sys.argv[9]), float(sys.argv[10])
rel = lambda p: cg[len(cg2):] + p  # the agent's cgroup label: the path below the cgroup2 root

def proc():
    st = open(f"/proc/{pid}/status").read()
    field = lambda k: int(re.search(rf"^{k}:\s+(\d+)", st, re.M).group(1))
    return field("VmRSS"), len(os.listdir(f"/proc/{pid}/fd")), field("Threads")

def total(body, name, **labels):
    s = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            s += float(line.rsplit(" ", 1)[1])
    return s

def counts(body):
    return {"execs": total(body, "podsight_process_execs_total", cgroup=rel("/exec")),
            "tcp connections": total(body, "podsight_tcp_connections_opened_total", cgroup=rel("/tcp")),
            "cgroup_skb packets": total(body, "podsight_network_packets_total", cgroup=rel("/pkt")),
            "xdp packets": total(body, "podsight_xdp_packets_total", interface=veth)}

samples, first, last, lost = [], None, None, []
t0 = time.monotonic()
with open(out, "w") as f:
    f.write("t,rss_kib,fds,threads,scrape_ok,scrape_ms,series\n")
    for i in range(secs):
        delay = t0 + i - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        start = time.monotonic()
        ok, body = False, ""
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode()
                ok = r.status == 200 and "podsight_build_info" in body
        except Exception as e:
            lost.append(f"{i}s: {e}")
        ms = (time.monotonic() - start) * 1000
        if not ok and (not lost or not lost[-1].startswith(f"{i}s:")):
            lost.append(f"{i}s: incomplete answer")
        try:
            rss, fds, threads = proc()
        except (FileNotFoundError, ProcessLookupError):
            print(f"soak: FAILED: the agent exited after {i}s", file=sys.stderr)
            sys.exit(1)
        series = sum(1 for l in body.splitlines() if l and not l.startswith("#"))
        samples.append((i, rss, fds, threads, ok, ms, series))
        f.write(f"{i},{rss},{fds},{threads},{int(ok)},{ms:.1f},{series}\n")
        f.flush()  # a run can be followed while it goes
        if ok:
            first = first or body
            last = body

warm = max(5, len(samples) // 10)
steady = samples[warm:]
k = max(1, len(steady) // 5)
med = lambda rows, col: statistics.median(r[col] for r in rows)
rss0, rss1 = med(steady[:k], 1), med(steady[-k:], 1)
fd0, fd1 = med(steady[:k], 2), med(steady[-k:], 2)
series0, series1 = med(steady[:k], 6), med(steady[-k:], 6)
allowed = rss_tol + per_series * max(0, series1 - series0)
ms = sorted(s[5] for s in samples)
minutes = (steady[-1][0] - steady[0][0]) / 60 or 1
print(f"soak: {len(samples)} scrapes, {len(lost)} lost; scrape ms median {statistics.median(ms):.1f}, "
      f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f}, max {ms[-1]:.1f}; series {samples[0][6]} -> {samples[-1][6]}",
      file=sys.stderr)
print(f"soak: RSS KiB median first/last 20% after {warm}s warm-up: {rss0:.0f} -> {rss1:.0f} "
      f"({(rss1 - rss0) / minutes:+.1f} KiB/min; min {min(s[1] for s in samples)}, max {max(s[1] for s in samples)}); "
      f"allowed +{allowed:.0f} (series median {series0:.0f} -> {series1:.0f}); "
      f"fds {fd0:.0f} -> {fd1:.0f} (max {max(s[2] for s in samples)}); "
      f"threads {samples[0][3]} -> {samples[-1][3]}", file=sys.stderr)
failures = [f"lost scrape at {l}" for l in lost[:10]]
if rss1 - rss0 > allowed:
    failures.append(f"RSS grew {rss1 - rss0:.0f} KiB (allowed {allowed:.0f}: {rss_tol} + {per_series:g} per added series)")
if fd1 - fd0 > fd_tol:
    failures.append(f"open descriptors grew {fd1 - fd0:.0f} (tolerance {fd_tol})")
if first is None:
    failures.append("no scrape succeeded")
else:
    c0, c1 = counts(first), counts(last)
    print("soak: counted " + ", ".join(f"{n} {c1[n] - c0[n]:.0f}" for n in c0), file=sys.stderr)
    failures += [f"{n} did not count" for n in c0 if c1[n] <= c0[n]]
    for fam in ("exec", "tcp", "cgroup_skb", "xdp"):
        if total(last, "podsight_program_state", program=fam, state="attached") != 1:
            failures.append(f"family {fam} is not attached")
for f in failures:
    print(f"soak: FAILED: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
