"""XDP: packets per second through a veth pair, a UDP flood sent from a network namespace to the root
namespace, with no XDP program on the receiving end, with an empty XDP program, with `xdp-bench pass`
and `xdp-filter` (allow-all, which counts packets and bytes per XDP action: the nearest peer of a
per-interface counter) from xdp-tools, and with podsight's xdp family. Configurations alternate within
every round. Then, with BPF run-time statistics on, the cost per packet of each program from the
kernel's own counters. A peer that cannot load on this kernel gets a row saying why; where
xdp-bench itself cannot load (it loads tracepoint programs the kernel may no longer have), its own
XDP program is loaded alone in its place (bench/tools/xdppeer.cpp).

On veth the receive side runs in the sender's softirq on the sender's CPU, so the sender is pinned to
one CPU and the rate is what that CPU can push through send + receive; a program's cost per packet
shows up directly as fewer packets per second."""

import contextlib
import json
import os
import subprocess
import time

from .common import (Agent, BenchError, Floor, LoadWatch, bpf_stats_on, prog_stats, rotations,
                     stop_process, summary, wait_until)
from .cost import only


def podsight_xdp_config(ifname):
    """The agent configuration that attaches podsight's xdp family, alone, natively to `ifname`."""
    config = only("xdp")
    config["programs"]["xdp"].update({"interfaces": [ifname], "mode": "native"})
    return config


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _mac(ifname, ns=None):
    cmd = (["-n", ns] if ns else []) + ["-j", "link", "show", ifname]
    return json.loads(_ip(*cmd).stdout)[0]["address"]


@contextlib.contextmanager
def veth_pair():
    """host end in the root namespace, peer end in a namespace of ours; static neighbours, no IPv6,
    so the only traffic is the flood."""
    tag = os.getpid() % 100000
    net = 16 + os.getpid() % 200
    ns, host, peer = f"pbx{tag}", f"pbxh{tag}", f"pbxp{tag}"
    host_ip, peer_ip = f"10.250.{net}.1", f"10.250.{net}.2"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
        for sysctl in (f"net.ipv6.conf.{host}.disable_ipv6=1",):
            subprocess.run(["sysctl", "-q", "-w", sysctl], check=False)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{peer}.disable_ipv6=1"],
                       check=False, capture_output=True)
        _ip("addr", "add", f"{host_ip}/30", "dev", host)
        _ip("-n", ns, "addr", "add", f"{peer_ip}/30", "dev", peer)
        _ip("link", "set", host, "up")
        _ip("-n", ns, "link", "set", peer, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("neigh", "replace", peer_ip, "lladdr", _mac(peer, ns), "dev", host, "nud", "permanent")
        _ip("-n", ns, "neigh", "replace", host_ip, "lladdr", _mac(host), "dev", peer, "nud", "permanent")
        yield {"ns": ns, "host": host, "peer": peer, "host_ip": host_ip, "peer_ip": peer_ip}
    finally:
        _ip("link", "del", host, check=False)
        _ip("netns", "del", ns, check=False)


def _rx_packets(ifname):
    with open(f"/sys/class/net/{ifname}/statistics/rx_packets") as f:
        return int(f.read())


def _xdp_prog_id(ifname):
    info = json.loads(_ip("-j", "link", "show", ifname).stdout)[0]
    xdp = info.get("xdp") or {}
    return xdp.get("prog", {}).get("id") or (xdp.get("attached") or [{}])[0].get("prog", {}).get("id")


class PeerUnavailable(BenchError):
    pass


@contextlib.contextmanager
def _xdp_bench(env, ifname):
    path = os.path.join(env.tmp, "xdp-bench.log")
    log = open(path, "w")
    p = subprocess.Popen(["xdp-bench", "pass", "--xdp-mode", "native", ifname], stdout=log,
                         stderr=subprocess.STDOUT)

    def attached():
        if p.poll() is not None:
            log.flush()
            with open(path) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            raise PeerUnavailable(f"xdp-bench exited with {p.returncode}: " + " / ".join(lines[-3:]))
        return _xdp_prog_id(ifname)

    try:
        wait_until("xdp-bench to attach", attached, timeout=30)
        yield _xdp_prog_id(ifname)
    finally:
        stop_process(p, sig=2)
        log.close()
        wait_until("xdp-bench to detach", lambda: not _xdp_prog_id(ifname), timeout=15)


@contextlib.contextmanager
def _xdp_bench_program(env, ifname):
    """xdp-bench's own XDP program, configured as `xdp-bench pass` does, loaded and attached by
    `podsight-bench xdp-bench-pass` without xdp-bench's statistics tracepoints (see
    bench/tools/xdppeer.cpp): for kernels where xdp-bench itself cannot load."""
    p = subprocess.Popen([env.tool_bin, "xdp-bench-pass", "--binary", "/usr/sbin/xdp-bench", "--ifname", ifname],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line:
        p.wait()
        raise PeerUnavailable(f"xdp-bench's XDP program did not load: {p.stderr.read().strip()}")
    try:
        yield json.loads(line)["progs"]["xdp_basic_prog"]
    finally:
        p.stdin.close()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(p)
        wait_until("xdp-bench's program to detach", lambda: not _xdp_prog_id(ifname), timeout=15)


@contextlib.contextmanager
def _xdp_filter(ifname):
    out = subprocess.run(["xdp-filter", "load", "--mode", "native", ifname], capture_output=True, text=True)
    if out.returncode != 0:
        raise PeerUnavailable(f"xdp-filter load failed: {out.stderr.strip()}")
    try:
        yield _xdp_prog_id(ifname)
    finally:
        subprocess.run(["xdp-filter", "unload", ifname], capture_output=True)
        wait_until("xdp-filter to detach", lambda: not _xdp_prog_id(ifname), timeout=15)


@contextlib.contextmanager
def _empty(env, ifname, stats):
    with Floor(env, ["xdp"], ifname=ifname, stats=stats) as f:
        yield f.ids["floor_xdp"]


@contextlib.contextmanager
def _podsight(env, ifname):
    with Agent(env, podsight_xdp_config(ifname)):
        prog = _xdp_prog_id(ifname)
        if not prog:
            raise BenchError(f"the agent attached no XDP program to {ifname}")
        yield prog


@contextlib.contextmanager
def _nothing():
    yield None


def _configs(env, v, stats):
    configs = {"no program": _nothing, "empty program": lambda: _empty(env, v["host"], stats),
               "xdp-bench pass": lambda: _xdp_bench(env, v["host"]),
               XDP_BENCH_PROGRAM: lambda: _xdp_bench_program(env, v["host"]),
               "xdp-filter (allow all, counts)": lambda: _xdp_filter(v["host"]),
               "podsight": lambda: _podsight(env, v["host"])}
    return configs


XDP_BENCH_PROGRAM = "xdp-bench pass, its program alone"


def _flood(env, v, seconds, cpu):
    cmd = ["ip", "netns", "exec", v["ns"], "taskset", "-c", str(cpu), env.tool_bin, "flood-udp",
           "--dst", v["host_ip"], "--port", "9", "--seconds", str(seconds), "--payload", "64"]
    rx0 = _rx_packets(v["host"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    rx1 = _rx_packets(v["host"])
    if out.returncode != 0:
        raise BenchError(f"flood failed: {out.stderr.strip()}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rx_pps": (rx1 - rx0) / res["seconds"], "sent_pps": res["sent"] / res["seconds"]}


def throughput(env):
    seconds = 2 if env.quick else 5
    rounds = env.n_rounds(3, 7)
    cpu = (os.cpu_count() or 1) - 1
    unavailable = {}
    with veth_pair() as v, LoadWatch() as load:
        configs = _configs(env, v, stats=False)
        for name, make in list(configs.items()):
            try:
                with make():
                    pass
            except PeerUnavailable as e:
                unavailable[name] = str(e)
                del configs[name]
        # xdp-bench's program loaded by itself is only a stand-in for xdp-bench when xdp-bench fails.
        if "xdp-bench pass" in configs and XDP_BENCH_PROGRAM in configs:
            del configs[XDP_BENCH_PROGRAM]
        pps = {c: [] for c in configs}
        sent = {c: [] for c in configs}
        _flood(env, v, 1, cpu)  # warm-up
        for _, order in rotations(list(configs), rounds):
            for c in order:
                with configs[c]():
                    time.sleep(0.2)
                    r = _flood(env, v, seconds, cpu)
                pps[c].append(r["rx_pps"])
                sent[c].append(r["sent_pps"])
        # veth switches to NAPI mode (ptr_ring + poll) once any XDP program is attached, which costs
        # more than most programs: the empty program's rate is the baseline for a program's own cost.
        base, empty = pps["no program"], pps["empty program"]
        rows = []
        for c in configs:
            rows.append({"config": c, "rx_pps": summary(pps[c]), "sent_pps": summary(sent[c]),
                         "ratio_to_no_program": summary([x / b for x, b in zip(pps[c], base)]),
                         "ratio_to_empty_program": summary([x / e for x, e in zip(pps[c], empty)])})

        # Per-packet cost: statistics on (they slow every program down, hence a separate pass).
        cost_rows = []
        with bpf_stats_on(env):
            configs = {k: f for k, f in _configs(env, v, stats=True).items() if k in pps and k != "no program"}
            per = {c: [] for c in configs}
            for _, order in rotations(list(configs), rounds):
                for c in order:
                    with configs[c]() as prog:
                        before = prog_stats(env, [prog])
                        _flood(env, v, seconds, cpu)
                        after = prog_stats(env, [prog])
                    t = after[prog][0] - before[prog][0]
                    n = after[prog][1] - before[prog][1]
                    per[c].append(t / n if n else None)
            for c in configs:
                cost_rows.append({"config": c, "ns_per_packet": summary(per[c])})
    return {"rounds": rounds, "seconds_per_run": seconds, "sender_cpu": cpu, "load": load.result(),
            "workload": "64-byte UDP payloads, sendmmsg batches of 64, one sender pinned to one CPU",
            "rows": rows, "cost_rows": cost_rows, "unavailable": unavailable}
