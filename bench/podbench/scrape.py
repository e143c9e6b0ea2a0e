"""Scrape: /metrics latency (p50, p99) and CPU per scrape at about 1k, 10k and 100k series, with one
and with several concurrent scrapers, plain and gzip (what Prometheus asks for), next to Debian's
prometheus-node-exporter scraped in the same rounds.

Series come from synthetic entries written into the running agent's own maps (podsight-bench fill, by
the map ids the agent holds): exec_counts entries spread over bench cgroups, each a distinct comm, so
each is one series; cgroup_skb_counts gets both directions of every bench cgroup (4 series each). The agent and
node_exporter are pinned to one CPU ("on one core"), the scrapers to the other."""

import contextlib
import os
import time

from .common import (Agent, LoadWatch, NodeExporter, bench_cgroup, cgroup_id, count_series, http_get,
                     proc_sample, quantile, reset_peak_rss, rotations, summary)

CGROUPS = 100


def _scrape_round(env, target, count, threads, gzip, cpu):
    before = proc_sample(target.pid)
    args = ["scrape", "--port", target.port, "--count", count, "--threads", threads]
    if gzip:
        args.append("--gzip")
    out = env.tool(*args, cpu=cpu)
    after = proc_sample(target.pid)
    n = len(out["latencies_ms"])
    return out["latencies_ms"], (after["cpu_seconds"] - before["cpu_seconds"]) / max(n, 1), out["bytes"]


def scrape(env):
    sizes = [1000, 10000, 100000]
    counts = {1000: 40, 10000: 10, 100000: 3} if env.quick else {1000: 100, 10000: 30, 100000: 8}
    ne_count = 5 if env.quick else 10
    rounds = env.n_rounds(2, 5)
    ncpu = os.cpu_count() or 1
    target_cpu, scraper_cpu = 0, (1 if ncpu > 1 else 0)
    # The series budget (cardinality.max_series, 10000 per family by default) would fold the larger
    # sizes into overflow series: raised so that the scrape carries them all.
    config = {"programs": {"exec": {"max_entries": 131072}, "cgroup_skb": {"max_entries": 16384}},
              "cardinality": {"max_series": 1000000}}
    results = []
    with contextlib.ExitStack() as stack:
        load = stack.enter_context(LoadWatch())
        cgroups = [stack.enter_context(bench_cgroup(env, f"scrape-{i:03d}")) for i in range(CGROUPS)]
        ids = ",".join(str(cgroup_id(c)) for c in cgroups)
        agent = stack.enter_context(Agent(env, config, cpu=target_cpu))
        ne = stack.enter_context(NodeExporter(env, cpu=target_cpu))
        env.tool("fill", "--map-id", agent.map_id("cgroup_skb_coun"), "--kind", "cgroup_skb",
                 "--entries", CGROUPS, "--cgroups", ids)
        baseline = count_series(http_get(agent.url())[1])
        ne_series = count_series(http_get(ne.url())[1])
        idle = proc_sample(agent.pid)
        for size in sizes:
            env.tool("fill", "--map-id", agent.map_id("exec_counts"), "--kind", "exec",
                     "--entries", max(0, size - baseline), "--cgroups", ids)
            series = count_series(http_get(agent.url())[1])  # also the warm-up: cgroup ids resolved once
            http_get(agent.url())
            for gzip in (False, True):
                for threads in (1, 4):
                    lat = {"podsight": [], "node_exporter": []}
                    cpu = {"podsight": [], "node_exporter": []}
                    size_bytes = {}
                    # The peak of these scrapes alone: each process's VmHWM restarts from its RSS now,
                    # once the last row's responses are freed (the client may have read a body before
                    # the server let go of it: the reset then counted 12 MiB at 100k series).
                    time.sleep(0.5)
                    for target in (agent, ne):
                        reset_peak_rss(target.pid)
                    for _, order in rotations(["podsight", "node_exporter"], rounds):
                        for who in order:
                            target = agent if who == "podsight" else ne
                            n = counts[size] if who == "podsight" else ne_count
                            ls, c, b = _scrape_round(env, target, max(1, n // threads), threads, gzip, scraper_cpu)
                            lat[who] += ls
                            cpu[who].append(c)
                            size_bytes[who] = b
                    row = {"target_series": size, "gzip": gzip, "scrapers": threads}
                    peaks = {"podsight": proc_sample(agent.pid)["hwm_bytes"],
                             "node_exporter": proc_sample(ne.pid)["hwm_bytes"]}
                    for who, nseries in (("podsight", series), ("node_exporter", ne_series)):
                        row[who] = {
                            "peak_rss_bytes": peaks[who],
                            "series": nseries,
                            "bytes": size_bytes[who],
                            "requests": len(lat[who]),
                            "p50_ms": quantile(lat[who], 0.5),
                            "p99_ms": quantile(lat[who], 0.99),
                            "cpu_ms_per_scrape": summary([c * 1e3 for c in cpu[who]]),
                            "cpu_us_per_series": summary([c * 1e6 / nseries for c in cpu[who]]),
                        }
                    row["cost_per_series_ratio"] = (row["podsight"]["cpu_us_per_series"]["median"] /
                                                    row["node_exporter"]["cpu_us_per_series"]["median"]
                                                    if row["node_exporter"]["cpu_us_per_series"]["median"] else None)
                    results.append(row)
            mem = proc_sample(agent.pid)
            peak = max(r["podsight"]["peak_rss_bytes"] for r in results
                       if r.get("target_series") == size and "podsight" in r)
            results.append({"target_series": size, "memory": {
                "podsight_rss_bytes": mem["rss_bytes"], "podsight_peak_rss_bytes": peak,
                "node_exporter_rss_bytes": proc_sample(ne.pid)["rss_bytes"]}})
    return {"rounds": rounds, "agent_cpu": target_cpu, "scraper_cpu": scraper_cpu, "load": load.result(),
            "cgroups": CGROUPS, "idle_rss_bytes": idle["rss_bytes"], "rows": results}
