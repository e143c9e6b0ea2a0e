"""In-kernel cost per event of each program family, from the kernel's own run-time statistics
(run_time_ns / run_cnt), next to a bpftrace program doing the same counting on the same hook and to an
empty program on that hook, all attached at once under one generated workload. Every round restarts
them in a rotated attach order, because the first program a hook runs pays for the coldest caches."""

import contextlib
import os

from .common import Agent, Bpftrace, Floor, LoadWatch, bench_cgroup, http_get, prog_stats, rotations, summary

FAMILIES = ("exec", "cgroup_skb", "tcp", "xdp")


def only(family, variant=None):
    """The agent's configuration with only `family` enabled (in `variant` when given)."""
    programs = {f: {"enabled": f == family} for f in FAMILIES}
    if variant:
        programs[family]["variant"] = variant
    return {"programs": programs}


def _iter_tcp(config):
    config["programs"]["tcp"]["open_connections"] = "iter_tcp"
    return config


# The agent with only the family under test enabled.
ONLY = {
    "exec": lambda variant: only("exec", variant),
    "cgroup_skb": lambda _: only("cgroup_skb"),
    "tcp": lambda variant: only("tcp", variant),
}

BPFTRACE_EXEC = "tracepoint:sched:sched_process_exec { @[cgroup, comm] = count(); }"
BPFTRACE_TCP = "tracepoint:sock:inet_sock_set_state { @[cgroup, args->newstate] = count(); }"


def _measure(env, contenders, workload, rounds):
    """contenders: {label: factory() -> context manager whose __enter__ returns {prog_name: prog_id}}.
    Returns {label: {prog_name: [ns per run, one per round]}} and runs per round."""
    per_run = {}
    counts = {}
    labels = list(contenders)
    for _, order in rotations(labels, rounds):
        with contextlib.ExitStack() as stack:
            ids = {}
            for label in order:
                ids[label] = stack.enter_context(contenders[label]())
            flat = [i for progs in ids.values() for i in progs.values()]
            before = prog_stats(env, flat)
            workload()
            after = prog_stats(env, flat)
            for label, progs in ids.items():
                for name, pid in progs.items():
                    t = after[pid][0] - before[pid][0]
                    c = after[pid][1] - before[pid][1]
                    per_run.setdefault(label, {}).setdefault(name, []).append(t / c if c else None)
                    counts.setdefault(label, {}).setdefault(name, []).append(c)
    return per_run, counts


@contextlib.contextmanager
def _agent_progs(env, config, prefix, binary=None):
    with Agent(env, config, binary=binary) as a:
        yield a.progs(prefix)


@contextlib.contextmanager
def _known_agent_progs(env, config, prefix, warm_up):
    """The agent after warm_up() (a little of the storm's own work, from its cgroup) and a scrape: the
    scrape gives a key seen in the hash its own slot (bpf/shared/cgroup_skb.h, exec.h), as every scrape
    interval does for a pod that runs, so the measured events take the path of a known key."""
    with Agent(env, config) as a:
        warm_up()
        http_get(a.url(), timeout=30)
        yield a.progs(prefix)


def _skb_agent_progs(env, cg):
    return _known_agent_progs(env, ONLY["cgroup_skb"](None), "cgroup_skb",
                              lambda: env.tool("storm-tcp", "--n", 10, "--cgroup", cg))


def _exec_agent_progs(env, cg, variant):
    return _known_agent_progs(env, ONLY["exec"](variant), "exec",
                              lambda: env.tool("storm-exec", "--n", 10, "--cgroup", cg))


@contextlib.contextmanager
def _bpftrace_progs(env, script):
    with Bpftrace(env, script) as b:
        yield b.progs()


@contextlib.contextmanager
def _floor_progs(env, hooks):
    with Floor(env, hooks) as f:
        yield f.ids


def _rows(per_run, counts, reference, floors):
    """One row per program: median ns/run and spread, ratio to the reference (per round), net of the
    empty program on the same hook (per round)."""
    rows = []
    ref = None
    if reference in per_run:
        ref = [sum(x for x in xs if x) for xs in zip(*per_run[reference].values())]
    for label, progs in per_run.items():
        for name, xs in progs.items():
            row = {"contender": label, "program": name, "ns_per_run": summary(xs),
                   "runs_per_round": summary(counts[label][name])}
            if ref and label != reference:
                row["ratio_to_" + reference] = summary([x / r if x and r else None for x, r in zip(xs, ref)])
            floor = floors.get(name)
            if floor and floor[0] in per_run and label != floor[0]:
                fs = per_run[floor[0]][floor[1]]
                row["net_of_empty_ns"] = summary([x - f if x and f else None for x, f in zip(xs, fs)])
            rows.append(row)
    return rows


def exec_cost(env):
    rounds = env.n_rounds(3, 7)
    n = 300 if env.quick else 1000
    with bench_cgroup(env, "exec-cost") as cg, LoadWatch() as load:
        contenders = {
            "podsight tp_btf": lambda: _exec_agent_progs(env, cg, "tp_btf"),
            "podsight tracepoint": lambda: _exec_agent_progs(env, cg, "tracepoint"),
            "bpftrace": lambda: _bpftrace_progs(env, BPFTRACE_EXEC),
            "empty": lambda: _floor_progs(env, ["exec_btf", "exec_tp", "exec_raw"]),
        }
        per_run, counts = _measure(env, contenders, lambda: env.tool("storm-exec", "--n", n, "--cgroup", cg), rounds)
    floors = {"exec_tp_btf": ("empty", "floor_exec_btf"), "exec_tracepoint": ("empty", "floor_exec_raw")}
    for name in per_run.get("bpftrace", {}):
        floors[name] = ("empty", "floor_exec_tp")
    return {"rounds": rounds, "workload": f"{n} execs of /bin/true per round", "load": load.result(),
            "rows": _rows(per_run, counts, "bpftrace", floors)}


def cgroup_skb_cost(env):
    rounds = env.n_rounds(3, 7)
    n = 3000 if env.quick else 10000
    with bench_cgroup(env, "skb-cost") as cg, LoadWatch() as load:
        contenders = {
            "podsight": lambda: _skb_agent_progs(env, cg),
            "empty": lambda: _floor_progs(env, ["cgroup_skb"]),
        }
        per_run, counts = _measure(env, contenders,
                                   lambda: env.tool("storm-tcp", "--n", n, "--cgroup", cg), rounds)
    floors = {"cgroup_skb_ingress": ("empty", "floor_skb_in"), "cgroup_skb_egress": ("empty", "floor_skb_out")}
    result = {"rounds": rounds, "workload": f"{n} loopback TCP connections per round (connect, 100 B, close)",
              "load": load.result(), "rows": _rows(per_run, counts, None, floors)}
    result["test_run"] = cgroup_skb_test_run(env)
    return result


def cgroup_skb_test_run(env):
    """BPF_PROG_TEST_RUN: the kernel runs the program a million times on one synthetic packet and
    reports the mean; no statistics overhead, no traffic, repeatable. Rows for a plain UDP and TCP
    packet and for a GSO packet of 10 segments (the only case that reads headers)."""
    repeat = 200000 if env.quick else 1000000
    rounds = env.n_rounds(3, 7)
    cases = [("udp", ["--proto", "udp"]), ("tcp", ["--proto", "tcp"]),
             ("tcp gso 10 segs", ["--proto", "tcp", "--gso-segs", "10"])]
    rows = []
    with LoadWatch() as load, Agent(env, ONLY["cgroup_skb"](None)) as a, Floor(env, ["cgroup_skb"]) as f:
        progs = a.progs("cgroup_skb")
        # The synthetic packet's socket is in podsight-bench's cgroup: one run puts it in the hash, a
        # scrape gives it its slot, as for a pod that sends.
        for pid in progs.values():
            env.tool("testrun", "--prog-id", pid, "--repeat", 1, "--rounds", 1, "--proto", "udp")
        http_get(a.url(), timeout=30)
        progs.update(f.ids)
        for case, args in cases:
            for name, pid in sorted(progs.items()):
                out = env.tool("testrun", "--prog-id", pid, "--repeat", repeat, "--rounds", rounds, *args)
                rows.append({"case": case, "program": name, "ns_per_run": summary(out["ns_per_run"])})
    return {"repeat": repeat, "rounds": rounds, "load": load.result(), "rows": rows}


def tcp_cost(env):
    """Same tracepoint as the tcp family (sock/inet_sock_set_state): podsight's tp_btf and classic
    tracepoint variants (only the tcp family on, its state-change program; the retransmit programs
    do not run on a clean loopback), bpftrace counting per (cgroup, new state), and empty programs
    on both kinds of hook. podsight's rows appear only when the agent holds programs named tcp*."""
    rounds = env.n_rounds(3, 7)
    n = 3000 if env.quick else 10000
    with Agent(env, ONLY["tcp"](None)) as probe:
        has_tcp = bool(probe.progs("tcp"))
    with bench_cgroup(env, "tcp-cost") as cg, LoadWatch() as load:
        contenders = {
            "bpftrace": lambda: _bpftrace_progs(env, BPFTRACE_TCP),
            "empty": lambda: _floor_progs(env, ["tcp_btf", "tcp_tp", "tcp_raw"]),
        }
        if has_tcp:
            contenders["podsight tp_btf"] = lambda: _agent_progs(env, ONLY["tcp"]("tp_btf"), "tcp_state")
            contenders["podsight tracepoint"] = lambda: _agent_progs(env, ONLY["tcp"]("tracepoint"), "tcp_state")
            # tp_btf with records in the tcp_conns hash (open_connections iter_tcp): what auto would
            # cost per event without socket storage
            contenders["podsight tp_btf iter_tcp"] = lambda: _agent_progs(env, _iter_tcp(ONLY["tcp"]("tp_btf")),
                                                                          "tcp_state")
        # An A/B of a change: another build's agent (PODBENCH_BASELINE_AGENT=path/to/podsight) in the
        # same rounds, its rows labelled "baseline".
        baseline = os.environ.get("PODBENCH_BASELINE_AGENT")
        if has_tcp and baseline:
            contenders["baseline tp_btf"] = lambda: _agent_progs(env, ONLY["tcp"]("tp_btf"), "tcp_state", baseline)
            contenders["baseline tracepoint"] = lambda: _agent_progs(env, ONLY["tcp"]("tracepoint"), "tcp_state",
                                                                     baseline)
        per_run, counts = _measure(env, contenders,
                                   lambda: env.tool("storm-tcp", "--n", n, "--cgroup", cg), rounds)
    # Program names are cut at 15 characters: tcp_state_tp_btf(_sk) reads "tcp_state_tp_bt",
    # tcp_state_tracepoint (a raw tracepoint) "tcp_state_trace"; bpftrace's is a classic tracepoint.
    def floor_of(name):
        if name.startswith("tcp_state_tp_bt"):
            return "floor_tcp_btf"
        return "floor_tcp_raw" if name.startswith("tcp_state_trace") else "floor_tcp_tp"

    floors = {name: ("empty", floor_of(name)) for label in per_run for name in per_run[label]}
    return {"rounds": rounds, "workload": f"{n} loopback TCP connections per round", "load": load.result(),
            "podsight_tcp_family": has_tcp, "rows": _rows(per_run, counts, "bpftrace", floors)}


EXEC_PARTS = ("part_cgroup_id", "part_comm", "part_key_btf", "part_array_add", "part_shared_add", "part_pcpu_hash",
              "part_pcpu_plain", "part_shared_hash", "part_slot_pcpu", "part_slot_shared")
# Measured a second time each alone with the empty program: with every part attached, whichever runs
# first on an exec takes the cold misses of what they share (the task, the helpers' code).
EXEC_PARTS_ALONE = ("part_key_btf", "part_array_add", "part_shared_add", "part_pcpu_hash", "part_shared_hash",
                    "part_slot_pcpu", "part_slot_shared")


def exec_profile(env):
    """Where the exec handler's time goes: each part of it (bench/bpf/floor.bpf.c part_*) as a program
    of its own on the same hook, next to podsight's tp_btf program and the empty one, all attached at
    once under the exec storm, in a rotated order every round. Net of the empty program."""
    rounds = env.n_rounds(3, 7)
    n = 300 if env.quick else 1000
    with bench_cgroup(env, "exec-profile") as cg, LoadWatch() as load:
        contenders = {"podsight tp_btf": lambda: _exec_agent_progs(env, cg, "tp_btf"),
                      # before any scrape: every exec takes the slot compare and the hash
                      "podsight tp_btf, no slot": lambda: _agent_progs(env, ONLY["exec"]("tp_btf"), "exec"),
                      "empty": lambda: _floor_progs(env, ["exec_btf"])}
        for part in EXEC_PARTS:
            contenders[part] = (lambda p: lambda: _floor_progs(env, [p]))(part)
        storm = lambda: env.tool("storm-exec", "--n", n, "--cgroup", cg)  # noqa: E731
        per_run, counts = _measure(env, contenders, storm, rounds)
        floor = lambda per_run: {n: ("empty", "floor_exec_btf") for label in per_run for n in per_run[label]}  # noqa: E731
        rows = _rows(per_run, counts, None, floor(per_run))
        for part in ("podsight tp_btf", "podsight tp_btf, no slot") + EXEC_PARTS_ALONE:
            alone = {"empty": contenders["empty"], part + " alone": contenders[part]}
            per_run, counts = _measure(env, alone, storm, rounds)
            rows += [r for r in _rows(per_run, counts, None, floor(per_run)) if r["contender"] != "empty"]
    return {"rounds": rounds, "workload": f"{n} execs of /bin/true per round", "load": load.result(),
            "rows": rows}


SKB_PARTS = ("part_skb_cgid", "part_skb_pcpu", "part_skb_1add", "part_skb_plain", "part_skb_shared",
             "part_skb_array", "part_skb_sk", "part_skb_in_only", "part_skb_out_only")
# Measured a second time each alone with the empty programs: with every part attached, whichever runs
# first on a packet takes the cold misses for all of them; alone, a part pays its own.
SKB_PARTS_ALONE = ("part_skb_cgid", "part_skb_pcpu", "part_skb_shared", "part_skb_array", "part_skb_in_only",
                   "part_skb_out_only")


def cgroup_skb_profile(env):
    """Where the cgroup_skb programs' time per packet goes: each part of the count (bench/bpf/floor.bpf.c
    part_skb_*, each with maps of its own) as programs of their own on the same cgroup root, next to
    podsight's programs and the empty ones, all attached at once under the loopback TCP storm, in a
    rotated order every round; then some parts again, each alone with the empty programs. Net of the
    empty program of the same direction."""
    rounds = env.n_rounds(3, 7)
    n = 3000 if env.quick else 10000
    with bench_cgroup(env, "skb-profile") as cg, LoadWatch() as load:
        contenders = {"podsight": lambda: _skb_agent_progs(env, cg),
                      # before any scrape: every packet takes the slot compare and the hash
                      "podsight, no slot": lambda: _agent_progs(env, ONLY["cgroup_skb"](None), "cgroup_skb"),
                      "empty": lambda: _floor_progs(env, ["cgroup_skb"])}
        for part in SKB_PARTS:
            contenders[part] = (lambda p: lambda: _floor_progs(env, [p]))(part)
        storm = lambda: env.tool("storm-tcp", "--n", n, "--cgroup", cg)  # noqa: E731
        per_run, counts = _measure(env, contenders, storm, rounds)
        rows = _rows(per_run, counts, None, _skb_floors(per_run))
        for part in SKB_PARTS_ALONE:
            alone = {"empty": contenders["empty"], part + " alone": contenders[part]}
            per_run, counts = _measure(env, alone, storm, rounds)
            rows += [r for r in _rows(per_run, counts, None, _skb_floors(per_run)) if r["contender"] != "empty"]
    return {"rounds": rounds, "workload": f"{n} loopback TCP connections per round (connect, 100 B, close)",
            "load": load.result(), "rows": rows}


def _skb_floors(per_run):
    # Ingress programs are named *_in, *_ingress or *_in_only; everything else runs on egress.
    return {name: ("empty", "floor_skb_in" if name.endswith(("_in", "ingress", "_in_only")) else "floor_skb_out")
            for label in per_run for name in per_run[label]}
TCP_PARTS = ("part_tcp_filter", "part_tcp_cgroup", "part_tcp_ktime", "part_tcp_read", "part_tcp_storage",
             "part_tcp_sk_create", "part_tcp_hash", "part_tcp_stats_add", "part_tcp_shared_atomic")


def tcp_profile(env):
    """Where the tcp state-change handler's time goes: each part of it (bench/bpf/floor.bpf.c
    part_tcp_*, every one behind the handler's own early filter) as a program of its own on
    tp_btf/inet_sock_set_state, next to podsight's tp_btf and tracepoint programs and the empty ones,
    all attached at once under the TCP storm, in a rotated order every round. Net of the empty
    program on the same kind of hook."""
    rounds = env.n_rounds(3, 7)
    n = 3000 if env.quick else 10000
    with bench_cgroup(env, "tcp-profile") as cg, LoadWatch() as load:
        contenders = {"podsight tp_btf": lambda: _agent_progs(env, ONLY["tcp"]("tp_btf"), "tcp_state"),
                      "podsight tracepoint": lambda: _agent_progs(env, ONLY["tcp"]("tracepoint"), "tcp_state"),
                      "empty": lambda: _floor_progs(env, ["tcp_btf", "tcp_raw"])}
        for part in TCP_PARTS:
            contenders[part] = (lambda p: lambda: _floor_progs(env, [p]))(part)
        per_run, counts = _measure(env, contenders,
                                   lambda: env.tool("storm-tcp", "--n", n, "--cgroup", cg), rounds)
    # Program names are cut at 15 characters: tcp_state_tracepoint reads "tcp_state_trace".
    floors = {name: ("empty", "floor_tcp_raw" if name.startswith("tcp_state_trace") else "floor_tcp_btf")
              for label in per_run for name in per_run[label]}
    return {"rounds": rounds, "workload": f"{n} loopback TCP connections per round", "load": load.result(),
            "rows": _rows(per_run, counts, None, floors)}
