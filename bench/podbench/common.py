"""Shared pieces of the benchmark suite: processes (agent, node_exporter, bpftrace, floor programs),
cgroups, statistics over interleaved rounds, and the machine's load while a measurement runs."""

import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request


class BenchError(Exception):
    pass


class Env:
    """Where things are and how long to run: built once from the command line."""

    def __init__(self, repo, build, results, quick, duration, rounds):
        self.repo = repo
        self.build = build
        self.results = results
        self.quick = quick
        self.duration = duration  # growth run, seconds
        self.rounds = rounds  # interleaved A/B rounds (None: each measurement's default)
        self.agent_bin = os.path.join(build, "agent", "podsight")
        self.tool_bin = os.path.join(build, "bench", "podsight-bench")
        self.cgroup_root = cgroup2_root()
        self.tmp = tempfile.mkdtemp(prefix="podbench-")

    def n_rounds(self, quick, full):
        if self.rounds:
            return self.rounds
        return quick if self.quick else full

    def tool(self, *args, timeout=600, cpu=None):
        """Runs a podsight-bench subcommand and returns its JSON output."""
        cmd = [self.tool_bin] + [str(a) for a in args]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------
# Statistics


def quantile(xs, q):
    s = sorted(xs)
    if not s:
        return None
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(xs):
    """Median and spread of one quantity over rounds."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "min": min(xs),
        "max": max(xs),
        "p25": quantile(xs, 0.25),
        "p75": quantile(xs, 0.75),
    }


def rotations(configs, rounds):
    """Interleaving: the order of the configurations in each round, rotated every round so that no
    configuration always runs first (warm caches) or last (after the machine heated up)."""
    n = len(configs)
    for r in range(rounds):
        k = r % n
        order = configs[k:] + configs[:k]
        if (r // n) % 2 == 1:
            order = list(reversed(order))
        yield r, order


# ---------------------------------------------------------------------------------------------------
# Machine state


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class LoadWatch:
    """Samples the 1-minute load average every few seconds while a measurement runs."""

    def __init__(self, period=5.0):
        self.period = period
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.samples.append(loadavg()[0])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.period):
            self.samples.append(loadavg()[0])

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(loadavg()[0])

    def result(self):
        return {"load1_min": min(self.samples), "load1_max": max(self.samples),
                "load1_mean": sum(self.samples) / len(self.samples)}


def cgroup2_root():
    """The first cgroup2 mount whose root is / (what the agent picks by default)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if right.split()[0] == "cgroup2" and fields[3] == "/":
                return fields[4]
    raise BenchError("no cgroup2 mount")


@contextlib.contextmanager
def bench_cgroup(env, name):
    """A cgroup of our own under the cgroup2 root; removed afterwards (its processes have exited)."""
    path = os.path.join(env.cgroup_root, f"podbench-{os.getpid()}-{name}")
    os.mkdir(path)
    try:
        yield path
    finally:
        remove_cgroup(path)


def remove_cgroup(path):
    """rmdir of a cgroup whose processes have exited, retried for 5 s while the kernel still counts
    them; whether it is gone."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.1)
    return False


def cgroup_id(path):
    return os.stat(path).st_ino


def reset_peak_rss(pid):
    """Sets a process's peak resident memory (VmHWM) back to what it holds now (clear_refs 5), so
    that the next proc_sample's hwm_bytes is the peak of what happened in between."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def proc_sample(pid):
    """CPU seconds, resident and peak memory, threads and fds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    kb = lambda k: int(status.get(k, "0 kB").split()[0]) * 1024  # noqa: E731
    return {
        "t": time.monotonic(),
        "cpu_seconds": cpu,
        "rss_bytes": kb("VmRSS"),
        "hwm_bytes": kb("VmHWM"),
        "threads": int(status.get("Threads", "0")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def count_series(body):
    """Sample lines of a text exposition."""
    return sum(1 for line in body.decode("utf-8", "replace").splitlines() if line and line[0] != "#")


def metric_sum(body, name):
    """Sum of every sample of metric `name` in a text exposition (0 if it has none)."""
    total = 0.0
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(what, cond, timeout=30.0, period=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except BenchError:
            raise  # the condition knows it will never hold
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(period)
    raise BenchError(f"timed out waiting for {what}")


def stop_process(p, sig=signal.SIGTERM, timeout=15):
    if p.poll() is not None:
        return p.returncode
    p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


# ---------------------------------------------------------------------------------------------------
# Processes under test


class Agent:
    """The podsight agent with a config of our choosing, in the root namespace, on a free port."""

    def __init__(self, env, config=None, cpu=None, name="agent", binary=None):
        self.env = env
        self.binary = binary or env.agent_bin
        self.config = dict(config or {})
        self.cpu = cpu
        self.name = name
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        cfg = {"log": {"level": "warn"}}
        cfg.update(self.config)
        cfg.setdefault("http", {})["listen"] = f"127.0.0.1:{self.port}"
        path = os.path.join(self.env.tmp, f"{self.name}-{self.port}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        cmd = [self.binary, "--config", path]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu)] + cmd
        self.log = open(os.path.join(self.env.tmp, f"{self.name}-{self.port}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until("podsight /readyz", self._ready, timeout=60)
        except BenchError:
            stop_process(self.proc)
            raise BenchError(f"agent did not become ready; log in {self.log.name}")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise BenchError(f"agent exited with {self.proc.returncode}; log in {self.log.name}")
        return http_get(f"http://127.0.0.1:{self.port}/readyz", timeout=5)[0] == 200

    def __exit__(self, *exc):
        rc = stop_process(self.proc)
        self.log.close()
        if rc not in (0, -signal.SIGTERM):
            raise BenchError(f"agent exited with {rc}; log in {self.log.name}")

    @property
    def pid(self):
        return self.proc.pid

    def held(self):
        return self.env.tool("held", "--pid", self.pid)

    def map_id(self, prefix):
        for m in self.held()["maps"]:
            if m.get("name", "").startswith(prefix):
                return m["id"]
        raise BenchError(f"agent holds no map named {prefix}*")

    def progs(self, prefix=""):
        return {p["name"]: p["id"] for p in self.held()["progs"] if p.get("name", "").startswith(prefix)}

    def url(self, path="/metrics"):
        return f"http://127.0.0.1:{self.port}{path}"


class NodeExporter:
    """Debian's prometheus-node-exporter with its default collectors, the peer users run anyway."""

    def __init__(self, env, cpu=None):
        self.env = env
        self.cpu = cpu
        self.port = free_port()

    def __enter__(self):
        cmd = ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{self.port}"]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu)] + cmd
        self.log = open(os.path.join(self.env.tmp, f"node-exporter-{self.port}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until("node_exporter /metrics",
                   lambda: http_get(f"http://127.0.0.1:{self.port}/metrics")[0] == 200, timeout=30)
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
        self.log.close()

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/metrics"):
        return f"http://127.0.0.1:{self.port}{path}"


class Bpftrace:
    """A bpftrace one-liner; ready once it holds as many programs as it has probes."""

    def __init__(self, env, script, probes=1):
        self.env = env
        self.script = script
        self.probes = probes

    def __enter__(self):
        self.log = open(os.path.join(self.env.tmp, f"bpftrace-{random.randrange(1 << 30)}.log"), "w")
        # Its maps are printed on exit: to the log, where they cost nothing during the measurement.
        self.proc = subprocess.Popen(["bpftrace", "-e", self.script], stdout=self.log, stderr=subprocess.STDOUT)

        def attached():
            if self.proc.poll() is not None:
                raise BenchError(f"bpftrace exited with {self.proc.returncode}; log in {self.log.name}")
            return len(self.progs()) >= self.probes

        wait_until("bpftrace to attach", attached, timeout=120, period=0.25)
        time.sleep(0.5)  # attach happens after the programs load
        return self

    def __exit__(self, *exc):
        stop_process(self.proc, signal.SIGINT)
        self.log.close()

    def progs(self):
        return {p["name"]: p["id"] for p in self.env.tool("held", "--pid", self.proc.pid)["progs"]}


class Floor:
    """Empty programs on the given hooks (bench/bpf/floor.bpf.c); keeps BPF run-time stats on unless
    stats=False."""

    def __init__(self, env, hooks, ifname=None, stats=True):
        self.env = env
        self.hooks = hooks
        self.ifname = ifname
        self.stats = stats

    def __enter__(self):
        cmd = [self.env.tool_bin, "floor", "--hooks", ",".join(self.hooks), "--cgroup-root", self.env.cgroup_root]
        if self.ifname:
            cmd += ["--ifname", self.ifname]
        if not self.stats:
            cmd.append("--no-stats")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise BenchError(f"floor programs failed to load ({' '.join(cmd)})")
        self.ids = json.loads(line)["progs"]
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)


@contextlib.contextmanager
def bpf_stats_on(env):
    """Holds the kernel's BPF run-time statistics on (BPF_ENABLE_STATS fd) without attaching anything."""
    with Floor(env, []) as f:
        yield f


def bpf_stats_sysctl():
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            return int(f.read().strip())
    except OSError:
        return None


def prog_stats(env, ids):
    """{id: (run_time_ns, run_cnt)} for program ids."""
    if not ids:
        return {}
    out = env.tool("progs", "--ids", ",".join(str(i) for i in ids))
    return {p["id"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in out}


def ns_per_run(before, after, pid):
    t0, c0 = before[pid]
    t1, c1 = after[pid]
    return (t1 - t0) / (c1 - c0) if c1 > c0 else None, c1 - c0
