"""Agent resident memory and CPU with many tracked TCP connections, next to node_exporter: real
loopback connections held open in a network namespace of ours, in steps (none, ~10k and ~100k
sockets the tcp family tracks), each step measured over a phase scraped like Prometheus does.

A loopback connection is two established sockets, both tracked (on a node they would be two pods'
ends), so 50k connections are 100k tracked entries. The file descriptor limit here is 20000 per
process and cannot be raised (no CAP_SYS_RESOURCE), so the sockets are spread over several holder
processes; each listens on its own port, below the namespace's ephemeral port range (widened to
2000-65000), which no client socket can then hold.
Run as a script (`conns.py hold ...`) this file is the holder."""

import contextlib
import os
import re
import subprocess
import sys
import time

PAIRS_PER_HOLDER = 9000  # 18000 fds, under the hard limit of 20000


def _hold(port, pairs):
    """Holder: makes `pairs` loopback connections to its own listener, prints "ready", holds them
    until stdin closes."""
    import socket
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4096)
    keep = [srv]
    for _ in range(pairs):
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        keep += [c, a]
    print("ready", flush=True)
    sys.stdin.read()


def _metric(body, name, label=None):
    total = 0.0
    pat = re.compile(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$")
    for line in body.decode("utf-8", "replace").splitlines():
        m = pat.match(line)
        if m and (label is None or (m.group(1) and label in m.group(1))):
            total += float(m.group(2))
    return total


@contextlib.contextmanager
def _netns():
    ns = f"pbc{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=2000 65000"],
                       check=True, capture_output=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


class _Holders:
    def __init__(self, ns, cgroup):
        self.ns, self.cgroup, self.procs, self.pairs = ns, cgroup, [], 0

    def grow_to(self, pairs):
        from .common import BenchError
        while self.pairs < pairs:
            n = min(PAIRS_PER_HOLDER, pairs - self.pairs)
            port = 1500 + len(self.procs)  # below the ephemeral range: never some client's port
            # The cgroup is joined before `ip netns exec`, which mounts a sysfs of its own over /sys.
            p = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, os.path.abspath(__file__), "hold",
                                  str(port), str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=self._join)
            self.procs.append(p)
            if p.stdout.readline().strip() != "ready":
                raise BenchError(f"connection holder exited with {p.wait()}")
            self.pairs += n

    def _join(self):
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def close(self):
        for p in self.procs:
            p.stdin.close()
        for p in self.procs:
            p.wait(60)


def tcp_connections(env):
    from .common import Agent, BenchError, LoadWatch, NodeExporter, bench_cgroup, http_get, wait_until
    from .resources import _phase
    phase_s = 15 if env.quick else 60
    prom_every = 5 if env.quick else 15
    steps = [("none", 0), ("10k tracked", 5000), ("100k tracked", 50000)]
    cfg = {"programs": {"tcp": {"max_connections": 262144}}}
    rows = []
    with contextlib.ExitStack() as stack:
        load = stack.enter_context(LoadWatch())
        cg = stack.enter_context(bench_cgroup(env, "conns"))
        ns = stack.enter_context(_netns())
        agent = stack.enter_context(Agent(env, cfg))
        ne = stack.enter_context(NodeExporter(env))
        holders = _Holders(ns, cg)
        stack.callback(holders.close)
        targets = {"podsight": agent, "node_exporter": ne}
        for label, pairs in steps:
            t0 = time.monotonic()
            holders.grow_to(pairs)
            opened_s = time.monotonic() - t0

            def tracked():
                return _metric(http_get(agent.url())[1], "podsight_map_entries", 'map="tcp_conns"')

            # Sockets are tracked when they become established: wait until the agent sees them all.
            try:
                wait_until("tracked connections", lambda: tracked() >= 2 * pairs, timeout=120, period=1)
            except BenchError:
                pass
            for t in targets.values():
                http_get(t.url())
            usage = _phase(targets, phase_s, scrape_every=prom_every)
            body = http_get(agent.url())[1]
            t1 = time.monotonic()
            scrapes = [_scrape_ms(agent) for _ in range(5)]
            rows.append({"step": label, "loopback_connections": pairs, "sockets": 2 * pairs,
                         "tracked": _metric(body, "podsight_map_entries", 'map="tcp_conns"'),
                         "active": _metric(body, "podsight_tcp_connections_active"),
                         "scrape_ms": sorted(scrapes)[len(scrapes) // 2],
                         "open_seconds": round(opened_s, 1), "scrape_probe_seconds": round(time.monotonic() - t1, 1),
                         "usage": usage})
    return {"load": load.result(), "phase_seconds": phase_s, "scraped_every_seconds": prom_every,
            "config": cfg, "rows": rows}


def _scrape_ms(agent):
    from .common import http_get
    t = time.monotonic()
    http_get(agent.url())
    return (time.monotonic() - t) * 1000


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "hold":
    _hold(int(sys.argv[2]), int(sys.argv[3]))
