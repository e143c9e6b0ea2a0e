"""Workload slowdown: the same storm without the agent and with it (default configuration, every family
on), in interleaved rounds, and with empty programs on the same hooks instead of the agent, which
shows what the kernel's hook machinery costs before podsight's programs do anything. Each round
starts the agent afresh, so the cost of loading is not in it.

Two ratios per round against "without": the CPU time the workload's cgroup used (cpu.stat
usage_usec, exact scheduler runtime, children and in-context softirq work included), which is what
BPF programs add to and which other processes competing for the CPU do not inflate; and the wall
time, which they do (on a busy 2-core machine by far more than 2 %). The CPU-time ratio is the
headline."""

import contextlib
import os

from .common import Agent, Floor, LoadWatch, bench_cgroup, bpf_stats_sysctl, http_get, rotations, summary


@contextlib.contextmanager
def _scraped_agent(env, warm_up, binary=None):
    """The agent after the workload's cgroup has done a little and one scrape has seen it, as for a
    pod that has run for one scrape interval (cgroup_skb gives a cgroup it has seen its own slot)."""
    with Agent(env, {}, binary=binary) as a:
        if warm_up:
            warm_up()
            http_get(a.url(), timeout=30)
        yield a


def _storm(env, name, run_once, rounds, empty_hooks, warm_up=None):
    """warm_up(cg), if given, runs in the workload's cgroup once the agent is up, before its scrape."""
    with bench_cgroup(env, name) as cg, LoadWatch() as load:
        configs = {
            "without": contextlib.nullcontext,
            "with agent": lambda: _scraped_agent(env, warm_up and (lambda: warm_up(cg))),
            "empty programs": lambda: Floor(env, empty_hooks, stats=False),
        }
        # An A/B of a change: another build's agent (PODBENCH_BASELINE_AGENT=path/to/podsight), same rounds.
        baseline = os.environ.get("PODBENCH_BASELINE_AGENT")
        if baseline:
            configs["baseline agent"] = lambda: _scraped_agent(env, warm_up and (lambda: warm_up(cg)), baseline)
        runs = {c: [] for c in configs}
        run_once(cg)  # warm-up: page cache, the program binary, ephemeral ports
        for _, order in rotations(list(configs), rounds):
            for c in order:
                with configs[c]():
                    runs[c].append(run_once(cg))
    out = {"rounds": rounds, "load": load.result(), "bpf_stats_sysctl": bpf_stats_sysctl(),
           "empty_hooks": empty_hooks, "configs": {}}
    for c in configs:
        out["configs"][c] = {}
        for what, key in (("cpu", "cpu_seconds"), ("wall", "seconds")):
            xs = [r[key] for r in runs[c]]
            base = [r[key] for r in runs["without"]]
            ratios = [a / b for a, b in zip(xs, base)]
            out["configs"][c][what] = {"seconds": summary(xs), "ratio": summary(ratios), "ratios": ratios}
    out["ratio"] = out["configs"]["with agent"]["cpu"]["ratio"]
    out["wall_ratio"] = out["configs"]["with agent"]["wall"]["ratio"]
    return out


def exec_storm(env):
    n = 300 if env.quick else 1000
    res = _storm(env, "exec-storm", lambda cg: env.tool("storm-exec", "--n", n, "--cgroup", cg), env.n_rounds(6, 15),
                 ["exec_btf"])
    res["workload"] = f"{n} sequential posix_spawn + wait of /bin/true"
    return res


def tcp_storm(env):
    n = 3000 if env.quick else 10000
    res = _storm(env, "tcp-storm", lambda cg: env.tool("storm-tcp", "--n", n, "--cgroup", cg), env.n_rounds(6, 15),
                 ["cgroup_skb", "tcp_btf"], warm_up=lambda cg: env.tool("storm-tcp", "--n", 10, "--cgroup", cg))
    res["workload"] = (f"{n} sequential loopback TCP connections: connect, send 100 B, server closes, client "
                       "closes (about 9 packets each, every one through an egress and an ingress hook)")
    return res
