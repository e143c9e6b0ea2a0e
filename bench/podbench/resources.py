"""The agent's own footprint next to node_exporter's, both running at the same time: resident memory and
CPU when idle, when scraped like Prometheus does, and under an exec + TCP workload scraped every
second; and the growth of memory, fds, threads, series and map entries over a long run (--duration),
with a fixed set of cgroups and with cgroups coming and going."""

import contextlib
import os
import threading
import time

from .common import (Agent, BenchError, LoadWatch, NodeExporter, bench_cgroup, count_series, http_get,
                     metric_sum, proc_sample, quantile, remove_cgroup)


def _usage(a0, a1):
    dt = a1["t"] - a0["t"]
    return {"cpu_percent_of_core": 100 * (a1["cpu_seconds"] - a0["cpu_seconds"]) / dt,
            "rss_bytes": a1["rss_bytes"], "peak_rss_bytes": a1["hwm_bytes"], "threads": a1["threads"],
            "fds": a1["fds"], "seconds": dt}


class _Workload:
    """Exec and TCP storms in a loop on a background thread, until stopped: in one bench cgroup, or,
    with churn, each cycle in a new child cgroup of it that is removed at the end of the cycle (a
    pod that comes, runs and goes)."""

    def __init__(self, env, cgroup, execs, conns, pause=0.0, churn=False):
        self.env, self.cgroup, self.execs, self.conns, self.pause = env, cgroup, execs, conns, pause
        self.churn = churn
        self.stop = threading.Event()
        self.cycles = 0
        self.error = None

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _cycle(self, cg):
        self.env.tool("storm-exec", "--n", self.execs, "--cgroup", cg)
        self.env.tool("storm-tcp", "--n", self.conns, "--cgroup", cg)

    def _run(self):
        try:
            while not self.stop.is_set():
                if self.churn:
                    cg = os.path.join(self.cgroup, f"c{self.cycles}")
                    os.mkdir(cg)
                    failed = None
                    try:
                        self._cycle(cg)
                    except Exception as e:  # noqa: BLE001 - raised again below, after the removal
                        failed = e
                    if not remove_cgroup(cg):
                        raise BenchError(f"churn cgroup {cg} still busy after its cycle"
                                         + (f" (the cycle had failed: {failed})" if failed else ""))
                    if failed is not None:
                        raise failed
                else:
                    self._cycle(self.cgroup)
                self.cycles += 1
                self.stop.wait(self.pause)
        except Exception as e:  # noqa: BLE001 - reported by __exit__, on the measuring thread
            self.error = e

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise BenchError(f"workload failed after {self.cycles} cycles: {self.error}")


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


GROWTH_EXECS, GROWTH_CONNS = 20, 200  # per workload cycle


def _growth_run(env, name, config, churn):
    """The workload for env.duration seconds, both processes scraped every 5 s and sampled every 5 or
    10 s. The first tenth is warm-up; slopes and first/last fifths are taken over the rest."""
    duration = env.duration
    sample_every = 5 if duration <= 120 else 10
    samples = {"podsight": [], "node_exporter": []}
    series, map_entries, gc_pending = [], [], []
    with contextlib.ExitStack() as stack:
        load = stack.enter_context(LoadWatch(period=30))
        cg = stack.enter_context(bench_cgroup(env, name))
        agent = stack.enter_context(Agent(env, config))
        ne = stack.enter_context(NodeExporter(env))
        targets = {"podsight": agent, "node_exporter": ne}
        t0 = time.monotonic()
        next_sample = t0
        with _Workload(env, cg, execs=GROWTH_EXECS, conns=GROWTH_CONNS, pause=0.5, churn=churn) as w:
            while time.monotonic() - t0 < duration and w.error is None:
                for t in targets.values():
                    http_get(t.url())
                if time.monotonic() >= next_sample:
                    for k, t in targets.items():
                        s = proc_sample(t.pid)
                        s["t"] -= t0
                        samples[k].append(s)
                    body = http_get(agent.url())[1]
                    t = time.monotonic() - t0
                    series.append((t, count_series(body)))
                    map_entries.append((t, metric_sum(body, "podsight_map_entries")))
                    gc_pending.append((t, metric_sum(body, "podsight_gc_pending_cgroups")))
                    next_sample += sample_every
                time.sleep(5)
    warm = duration / 10
    out = {"duration_seconds": duration, "load": load.result(), "workload_cycles": w.cycles,
           "execs_per_cycle": GROWTH_EXECS, "conns_per_cycle": GROWTH_CONNS, "churn": churn, "config": config, "sample_every_seconds": sample_every, "samples": samples,
           "series": series, "map_entries": map_entries, "gc_pending_cgroups": gc_pending}
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
    p = summary["podsight"]
    for key, points in (("series", series), ("map_entries", map_entries), ("gc_pending", gc_pending)):
        steady = [v for t, v in points if t >= warm] or [v for _, v in points]
        fifth = max(1, len(steady) // 5)
        p[f"{key}_first"], p[f"{key}_last"], p[f"{key}_max"] = steady[0], steady[-1], max(steady)
        # Medians of the first and last fifths: churn makes single samples jump with the cycle.
        p[f"{key}_first_fifth"] = quantile(steady[:fifth], 0.5)
        p[f"{key}_last_fifth"] = quantile(steady[-fifth:], 0.5)
    out["summary"] = summary
    return out


def growth(env):
    """A steady workload (execs and connections in one fixed cgroup). Cgroup churn is growth_churn."""
    return _growth_run(env, "growth", {}, churn=False)


# Deleted cgroups' map entries and series stay for the grace period, so that Prometheus scrapes their
# last counts; shortened here from 120 s so that the steady state (cgroups pending deletion) is
# reached within the warm-up of a 60-second --quick run.
CHURN_GC = {"gc": {"grace_period_seconds": 10, "interval_seconds": 2}}


def growth_churn(env):
    """The same workload, each cycle in a new cgroup removed at its end: what a node with pods coming
    and going asks of the cgroup cache, the garbage collector, the slots and the series budget."""
    return _growth_run(env, "churn", CHURN_GC, churn=True)
