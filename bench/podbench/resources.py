"""The agent's own footprint next to node_exporter's, both running at the same time: resident memory and
CPU when idle, when scraped like Prometheus does, and under an exec + TCP workload scraped every
second; and the growth of memory, fds, threads and series over a long run (--duration)."""

import contextlib
import threading
import time

from .common import (Agent, LoadWatch, NodeExporter, bench_cgroup, count_series, http_get, proc_sample)


def _usage(a0, a1):
    dt = a1["t"] - a0["t"]
    return {"cpu_percent_of_core": 100 * (a1["cpu_seconds"] - a0["cpu_seconds"]) / dt,
            "rss_bytes": a1["rss_bytes"], "peak_rss_bytes": a1["hwm_bytes"], "threads": a1["threads"],
            "fds": a1["fds"], "seconds": dt}


class _Workload:
    """Exec and TCP storms in a loop on a background thread, in one bench cgroup, until stopped."""

    def __init__(self, env, cgroup, execs, conns, pause=0.0):
        self.env, self.cgroup, self.execs, self.conns, self.pause = env, cgroup, execs, conns, pause
        self.stop = threading.Event()
        self.cycles = 0

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            self.env.tool("storm-exec", "--n", self.execs, "--cgroup", self.cgroup)
            self.env.tool("storm-tcp", "--n", self.conns, "--cgroup", self.cgroup)
            self.cycles += 1
            self.stop.wait(self.pause)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _phase(targets, seconds, scrape_every=None):
    """Samples every target before and after `seconds`, scraping each every `scrape_every` s."""
    before = {k: proc_sample(t.pid) for k, t in targets.items()}
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        if scrape_every:
            for t in targets.values():
                http_get(t.url())
            time.sleep(min(scrape_every, max(0.0, end - time.monotonic())))
        else:
            time.sleep(left)
    after = {k: proc_sample(t.pid) for k, t in targets.items()}
    return {k: _usage(before[k], after[k]) for k in targets}


def idle_and_load(env):
    idle_s = 20 if env.quick else 120
    load_s = 15 if env.quick else 60
    prom_every = 5 if env.quick else 15
    with contextlib.ExitStack() as stack:
        load = stack.enter_context(LoadWatch())
        cg = stack.enter_context(bench_cgroup(env, "resources"))
        agent = stack.enter_context(Agent(env, {}))
        ne = stack.enter_context(NodeExporter(env))
        targets = {"podsight": agent, "node_exporter": ne}
        for t in targets.values():
            http_get(t.url())  # one scrape first: steady state includes a scrape's allocations
        time.sleep(3)
        rows = {"idle (not scraped)": _phase(targets, idle_s)}
        rows[f"idle, scraped every {prom_every} s"] = _phase(targets, idle_s, scrape_every=prom_every)
        with _Workload(env, cg, execs=50, conns=500) as w:
            rows["exec + TCP storms, scraped every 1 s"] = _phase(targets, load_s, scrape_every=1)
        series = {k: count_series(http_get(t.url())[1]) for k, t in targets.items()}
    return {"load": load.result(), "idle_seconds": idle_s, "load_seconds": load_s, "workload_cycles": w.cycles,
            "series": series, "rows": rows}


def _slope_per_minute(points):
    """Least-squares slope of (t seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return None
    mt = sum(p[0] for p in points) / n
    mv = sum(p[1] for p in points) / n
    den = sum((p[0] - mt) ** 2 for p in points)
    return 60 * sum((p[0] - mt) * (p[1] - mv) for p in points) / den if den else None


def growth(env):
    """A steady workload (execs and connections in a fixed set of cgroups, scraped every 5 s) for
    env.duration seconds. The first tenth is warm-up; slopes are fitted over the rest. Cgroup churn
    (pods coming and going) is not part of it: forgetting deleted cgroups is issue 4's cardinality
    budget, and its growth would hide a leak of the agent's own."""
    duration = env.duration
    sample_every = 5 if duration <= 120 else 10
    samples = {"podsight": [], "node_exporter": []}
    series = []
    with contextlib.ExitStack() as stack:
        load = stack.enter_context(LoadWatch(period=30))
        cg = stack.enter_context(bench_cgroup(env, "growth"))
        agent = stack.enter_context(Agent(env, {}))
        ne = stack.enter_context(NodeExporter(env))
        targets = {"podsight": agent, "node_exporter": ne}
        t0 = time.monotonic()
        next_sample = t0
        with _Workload(env, cg, execs=20, conns=200, pause=0.5) as w:
            while time.monotonic() - t0 < duration:
                for t in targets.values():
                    http_get(t.url())
                if time.monotonic() >= next_sample:
                    for k, t in targets.items():
                        s = proc_sample(t.pid)
                        s["t"] -= t0
                        samples[k].append(s)
                    series.append((time.monotonic() - t0, count_series(http_get(agent.url())[1])))
                    next_sample += sample_every
                time.sleep(5)
    warm = duration / 10
    out = {"duration_seconds": duration, "load": load.result(), "workload_cycles": w.cycles,
           "sample_every_seconds": sample_every, "samples": samples, "series": series}
    summary = {}
    for k, ss in samples.items():
        steady = [s for s in ss if s["t"] >= warm] or ss
        summary[k] = {
            "rss_first_bytes": steady[0]["rss_bytes"], "rss_last_bytes": steady[-1]["rss_bytes"],
            "rss_max_bytes": max(s["rss_bytes"] for s in steady),
            "rss_slope_bytes_per_min": _slope_per_minute([(s["t"], s["rss_bytes"]) for s in steady]),
            "fds_first": steady[0]["fds"], "fds_last": steady[-1]["fds"],
            "threads_first": steady[0]["threads"], "threads_last": steady[-1]["threads"],
            "cpu_percent_of_core": 100 * (ss[-1]["cpu_seconds"] - ss[0]["cpu_seconds"]) /
                                   max(ss[-1]["t"] - ss[0]["t"], 1e-9),
        }
    steady_series = [p for p in series if p[0] >= warm] or series
    summary["podsight"]["series_first"] = steady_series[0][1]
    summary["podsight"]["series_last"] = steady_series[-1][1]
    out["summary"] = summary
    return out
