#!/usr/bin/env bash
# Soak: the agent with every program family on (exec, tcp with remote labels, cgroup_skb, xdp) under
# steady exec, TCP and packet load, each from a cgroup of its own, the TCP and packet load from a
# network namespace of its own across a veth the XDP program is attached to; and under cgroup churn,
# as pods come and go: every cycle makes four child cgroups of a churn cgroup, runs five execs and one
# HTTP connection to the agent in each, keeps each alive 1.2 s (long enough for a scrape to resolve its
# path, as it would a pod's) and removes them. The garbage collector runs with a 5 s grace, every second,
# so that what the removed cgroups leave behind must be deleted within the run (SOAK_GC_GRACE sets
# another grace, such as the agent's default of 120 s, for a long run). /metrics is scraped
# every second for the whole run; the agent's RSS and open descriptors are read at every scrape.
#
#   scripts/soak.sh [SECONDS]     (default 600; root, after scripts/build.sh)
#
# Fails when
#   - a scrape is lost: no answer within 5 s, a status other than 200, or a body without
#     podsight_build_info (every scrape counts, warm-up included);
#   - memory grows: the median RSS of the last 20 % of the samples exceeds the median of the first
#     20 % by more than SOAK_RSS_TOLERANCE_KIB (default 1024) plus SOAK_RSS_PER_SERIES_KIB (default 4)
#     for each series the scrape gained between those two windows, after a warm-up that is left out:
#     the first 10 % of the samples, at least the gc grace plus 8 s (so that the removed cgroups waiting
#     for the collector have reached their steady number), at least 5. Medians of many samples, so that one scrape's transient
#     buffers (freed again at once) neither fail nor hide a steady climb. The agent counts the whole
#     host, so other workloads' new cgroups and commands add series, and memory that follows them is
#     no leak (a scrape holds ~1 KiB per series); a leak grows with time at a constant series count;
#   - descriptors grow: the same comparison for the open-fd count, tolerance SOAK_FD_TOLERANCE
#     (default 2: a scrape connection or a scrape-time iterator open at the moment of reading);
#   - churn leaks: the removed cgroups' series are not deleted (the median count of churn cgroups with
#     series in the last 20 % exceeds what the churn rate allows to be alive or within the grace, that
#     is rate * (grace + 3 intervals + 3 s) + 8), the median of the cgroup paths the agent holds
#     (podsight_cgroup_paths_cached) grows by more than that between the two windows, the median of
#     podsight_map_entries by more than SOAK_MAP_TOLERANCE (default 64), or the garbage collector deleted
#     nothing;
#   - churn does not run as it should: fewer than one cgroup every two seconds, a cgroup still busy 2 s
#     after its processes ended, or no churn cgroup ever labelled with its path;
#   - a family does not count its load (exec, TCP, cgroup_skb or XDP counters unchanged over the run),
#     a family is not attached, or the agent exits.
# The samples (t, rss_kib, fds, threads, scrape_ok, scrape_ms, series, churn_cgroups, map_entries,
# gc_pending, cgroup_paths) go to SOAK_OUT (default
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
	for p in exec tcp pkt $(cd "$cg/churn" 2>/dev/null && printf 'churn/%s ' c*) churn ""; do
		for _ in $(seq 50); do rmdir "$cg/$p" 2>/dev/null && break; [[ -d $cg/$p ]] || break; sleep 0.1; done
	done
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$cg/exec" "$cg/tcp" "$cg/pkt" "$cg/churn"
ip netns add "$ns"
ip link add "$vh" type veth peer name "$vn"
ip link set "$vn" netns "$ns"
ip addr add "$host_ip/30" dev "$vh"
ip link set "$vh" up
ip -n "$ns" addr add "$ns_ip/30" dev "$vn"
ip -n "$ns" link set "$vn" up
ip -n "$ns" link set lo up

gc_grace=${SOAK_GC_GRACE:-5} gc_interval=1
[[ $gc_grace =~ ^[0-9]+$ && $((secs - gc_grace)) -ge 40 ]] ||
	{ echo "soak: SOAK_GC_GRACE must be a number of seconds at least 40 below SECONDS" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/config.json" <<EOF
{"http": {"listen": "$host_ip:$port"}, "cgroup_root": "$cg2", "bpf_stats": true,
 "kubernetes": {"source": "off"}, "log": {"level": "warn"},
 "gc": {"grace_period_seconds": $gc_grace, "interval_seconds": $gc_interval},
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
# Churn: four cgroups at a time, each made, used, kept 1.2 s and removed (see the top). The driver
# counts the cgroups it removed in churn.count and the ones it could not remove in churn.busy.
cat >"$work/churn.sh" <<'EOF'
parent=$1 host=$2 port=$3 count=$4 busy=$5
n=0
while :; do
	kids=()
	for i in 0 1 2 3; do
		mkdir "$parent/c$n-$i"
		bash -c 'echo $BASHPID >"$1/cgroup.procs" || exit 1
			for _ in 1 2 3 4 5; do /bin/true; done
			if exec 3<>"/dev/tcp/$2/$3"; then printf "GET /healthz HTTP/1.0\r\n\r\n" >&3; cat <&3 >/dev/null; exec 3>&-; fi
			sleep 1.2' _ "$parent/c$n-$i" "$host" "$port" &
		kids+=($!)
	done
	wait "${kids[@]}"
	for i in 0 1 2 3; do
		for _ in $(seq 100); do rmdir "$parent/c$n-$i" 2>/dev/null && break; sleep 0.02; done
		if [[ -d $parent/c$n-$i ]]; then echo "c$n-$i" >>"$busy"; fi
	done
	n=$((n + 1))
	echo $((n * 4)) >"$count"
done
EOF
load churn "$cg/churn" "" -- bash "$work/churn.sh" "$cg/churn" "$host_ip" "$port" "$work/churn.count" "$work/churn.busy"

echo "soak: ${secs}s, agent pid $apid on $host_ip:$port, netns $ns, veth $vh, cgroups $cg, samples $out" >&2
python3 - "$secs" "$apid" "http://$host_ip:$port/metrics" "$out" "$cg2" "$cg" "$vh" \
	"${SOAK_RSS_TOLERANCE_KIB:-1024}" "${SOAK_FD_TOLERANCE:-2}" "${SOAK_RSS_PER_SERIES_KIB:-4}" \
	"${SOAK_MAP_TOLERANCE:-64}" "$gc_grace" "$gc_interval" "$work/churn.count" "$work/churn.busy" <<'PY'
import math, os, re, statistics, sys, time, urllib.request

secs, pid, url, out, cg2, cg, veth = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:8]
rss_tol, fd_tol, per_series = int(sys.argv[8]), int(sys.argv[9]), float(sys.argv[10])
map_tol, gc_grace, gc_interval = int(sys.argv[11]), int(sys.argv[12]), int(sys.argv[13])
churn_count, churn_busy = sys.argv[14], sys.argv[15]
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

def unlabelled(body, name):
    """The value of a series without labels (total() reads labelled ones)."""
    return next((float(l.split()[1]) for l in body.splitlines() if l.startswith(name + " ")), 0.0)

def churn_cgroups(body):
    """The churn cgroups that have a series in this scrape (labelled with their path)."""
    return len(set(re.findall(r'cgroup="' + re.escape(rel("/churn/")) + r'([^"/]+)"', body)))

def counts(body):
    return {"execs": total(body, "podsight_process_execs_total", cgroup=rel("/exec")),
            "tcp connections": total(body, "podsight_tcp_connections_opened_total", cgroup=rel("/tcp")),
            "cgroup_skb packets": total(body, "podsight_network_packets_total", cgroup=rel("/pkt")),
            "xdp packets": total(body, "podsight_xdp_packets_total", interface=veth)}

samples, first, last, lost = [], None, None, []
t0 = time.monotonic()
with open(out, "w") as f:
    f.write("t,rss_kib,fds,threads,scrape_ok,scrape_ms,series,churn_cgroups,map_entries,gc_pending,"
            "cgroup_paths\n")
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
        churn, entries = churn_cgroups(body), total(body, "podsight_map_entries")
        pending, paths = unlabelled(body, "podsight_gc_pending_cgroups"), unlabelled(body, "podsight_cgroup_paths_cached")
        samples.append((i, rss, fds, threads, ok, ms, series, churn, entries, pending, paths))
        f.write(f"{i},{rss},{fds},{threads},{int(ok)},{ms:.1f},{series},{churn},{entries:.0f},{pending:.0f},{paths:.0f}\n")
        f.flush()  # a run can be followed while it goes
        if ok:
            first = first or body
            last = body

warm = max(5, len(samples) // 10, gc_grace + 3 * gc_interval + 5)
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

# Churn: what removed cgroups leave must go. At a steady rate r (cgroups a second) about 4 are alive and
# r * (grace + up to two gc intervals) removed ones wait for the collector; a leak grows with time.
made = int((open(churn_count).read().strip() or "0") if os.path.exists(churn_count) else 0)
busy = open(churn_busy).read().split() if os.path.exists(churn_busy) else []
rate = made / secs
churn_bound = math.ceil(rate * (gc_grace + 3 * gc_interval + 3)) + 8
churn0, churn1 = med(steady[:k], 7), med(steady[-k:], 7)
map0, map1 = med(steady[:k], 8), med(steady[-k:], 8)
paths0, paths1 = med(steady[:k], 10), med(steady[-k:], 10)
print(f"soak: churn {made} cgroups made, used and removed ({rate:.1f}/s), {len(busy)} left busy; churn cgroups "
      f"with series median {churn0:g} -> {churn1:g} (max {max(s[7] for s in samples)}, allowed {churn_bound}); "
      f"map entries {map0:.0f} -> {map1:.0f} (tolerance {map_tol}); cgroup paths held {paths0:g} -> {paths1:g}; "
      f"gc pending median {med(steady[-k:], 9):g}", file=sys.stderr)
if made < secs / 2:
    failures.append(f"churn made {made} cgroups in {secs}s, fewer than one every two seconds")
if busy:
    failures.append(f"churn could not remove {len(busy)} cgroups 2 s after their processes ended: {busy[:5]}")
if max(s[7] for s in samples) == 0:
    failures.append("no churn cgroup was ever labelled with its path")
if churn1 > churn_bound:
    failures.append(f"removed cgroups keep their series: {churn1:g} churn cgroups with series (allowed {churn_bound})")
if paths1 - paths0 > churn_bound:
    failures.append(f"cgroup paths held grew {paths1 - paths0:g} under churn (allowed {churn_bound})")
if map1 - map0 > map_tol:
    failures.append(f"map entries grew {map1 - map0:.0f} under churn (tolerance {map_tol})")
if first is not None and last is not None:
    deleted = total(last, "podsight_gc_deleted_entries_total") - total(first, "podsight_gc_deleted_entries_total")
    print(f"soak: gc deleted {deleted:.0f} map entries of removed cgroups", file=sys.stderr)
    if deleted <= 0:
        failures.append("the garbage collector deleted no entry of a removed cgroup")
for f in failures:
    print(f"soak: FAILED: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
