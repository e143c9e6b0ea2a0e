"""Workload slowdown: the same storm timed without the agent and with it (default configuration, every
family on), in interleaved rounds. Each round starts a fresh agent, so the cost of a first scrape or
of loading is not in it; the ratio of the two times within a round is what is reported."""

from .common import Agent, LoadWatch, bench_cgroup, bpf_stats_sysctl, rotations, summary


def _storm(env, name, run_once, rounds):
    times = {"without": [], "with": []}
    with bench_cgroup(env, name) as cg, LoadWatch() as load:
        run_once(cg)  # warm-up: page cache, the program binary, ephemeral ports
        for _, order in rotations(["without", "with"], rounds):
            for config in order:
                if config == "with":
                    with Agent(env, {}):
                        times["with"].append(run_once(cg))
                else:
                    times["without"].append(run_once(cg))
    ratios = [w / wo for w, wo in zip(times["with"], times["without"])]
    return {"rounds": rounds, "load": load.result(), "bpf_stats_sysctl": bpf_stats_sysctl(),
            "without_seconds": summary(times["without"]), "with_seconds": summary(times["with"]),
            "ratio": summary(ratios), "ratios": ratios}


def exec_storm(env):
    n = 500 if env.quick else 2000
    res = _storm(env, "exec-storm",
                 lambda cg: env.tool("storm-exec", "--n", n, "--cgroup", cg)["seconds"], env.n_rounds(4, 10))
    res["workload"] = f"{n} sequential posix_spawn + wait of /bin/true"
    return res


def tcp_storm(env):
    n = 5000 if env.quick else 20000
    res = _storm(env, "tcp-storm",
                 lambda cg: env.tool("storm-tcp", "--n", n, "--cgroup", cg)["seconds"], env.n_rounds(4, 10))
    res["workload"] = f"{n} sequential loopback TCP connections: connect, send 100 B, server closes, client closes"
    return res
