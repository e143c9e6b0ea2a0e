"""podbench: runs the benchmark suite (bench/run.sh is the documented entry point), writes
bench/results/<stamp>/results.json and regenerates the tables of docs/performance.md."""

import argparse
import datetime
import json
import os
import shutil
import sys
import time
import traceback

from . import conns, cost, mapreads, report, resources, scrape, slowdown, sysinfo, xdp
from .common import BenchError, Env, loadavg

# name -> (function, what it measures). Run in this order; --only picks some.
MEASUREMENTS = {
    "exec_cost": (cost.exec_cost, "exec: ns per event, podsight vs bpftrace vs an empty program"),
    "exec_profile": (cost.exec_profile, "exec: ns per event of each part of the handler, alone on the hook"),
    "cgroup_skb_cost": (cost.cgroup_skb_cost, "cgroup_skb: ns per packet, podsight vs an empty program"),
    "cgroup_skb_profile": (cost.cgroup_skb_profile,
                           "cgroup_skb: ns per packet of each part of the count, alone on the cgroup root"),
    "tcp_cost": (cost.tcp_cost, "inet_sock_set_state: ns per event, podsight vs bpftrace vs an empty program"),
    "tcp_profile": (cost.tcp_profile, "inet_sock_set_state: ns per event of each part of the tcp handler, alone on the hook"),
    "exec_storm": (slowdown.exec_storm, "exec storm: time with the agent / without"),
    "tcp_storm": (slowdown.tcp_storm, "loopback TCP storm: time with the agent / without"),
    "xdp": (xdp.throughput, "UDP flood through a veth pair: pps with no program, xdp-bench pass, podsight"),
    "tcp_conns": (conns.tcp_connections, "RSS and CPU at 10k and 100k tracked TCP connections vs node_exporter"),
    "scrape": (scrape.scrape, "/metrics latency and CPU per series at 1k/10k/100k series vs node_exporter"),
    "resources": (resources.idle_and_load, "RSS and CPU idle and under load, podsight vs node_exporter"),
    "mapreads": (mapreads.mapreads, "batch lookup vs key-by-key iteration at 10k/100k/1M entries"),
    "growth": (resources.growth, "RSS, fds, CPU and series over a long run (--duration) with a steady workload"),
    "growth_churn": (resources.growth_churn,
                     "the same with cgroup churn: each workload cycle in a new cgroup, removed after it"),
}


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs (for development)")
    ap.add_argument("--only", default="", help="comma-separated measurements: " + ",".join(MEASUREMENTS))
    ap.add_argument("--skip", default="", help="comma-separated measurements to leave out")
    ap.add_argument("--duration", type=float, default=None,
                    help="growth runs in seconds (default 600, --quick 60)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per measurement")
    ap.add_argument("--build", default=os.path.join(repo, "build-bench"), help="build directory")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    ap.add_argument("--docs-from", metavar="RESULTS_JSON",
                    help="only merge an earlier results.json and regenerate docs/performance.md from it")
    args = ap.parse_args()

    docs = os.path.join(repo, "docs", "performance.md")
    results_root = os.path.join(repo, "bench", "results")
    if args.docs_from:
        with open(args.docs_from) as f:
            report.write_docs(docs, report.merge(results_root, json.load(f)))
        return 0

    only = [m for m in args.only.split(",") if m]
    skip = [m for m in args.skip.split(",") if m]
    for m in only + skip:
        if m not in MEASUREMENTS:
            ap.error(f"unknown measurement {m}")
    selected = [m for m in MEASUREMENTS if (not only or m in only) and m not in skip]
    duration = args.duration if args.duration is not None else (60 if args.quick else 600)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    run_dir = os.path.join(results_root, stamp.replace(" ", "T").replace(":", "").replace("TUTC", "Z"))
    env = Env(repo, os.path.abspath(args.build), run_dir, args.quick, duration, args.rounds)
    os.makedirs(env.results, exist_ok=True)
    out = {
        "started": stamp,
        "quick": args.quick,
        "machine": sysinfo.collect(env),
        "load_at_start": loadavg(),
        "measurements": {},
    }
    path = os.path.join(env.results, "results.json")
    failed = []
    try:
        for name in selected:
            fn, what = MEASUREMENTS[name]
            print(f"podbench: {name}: {what} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                res = fn(env)
            except (BenchError, OSError) as e:
                traceback.print_exc()
                res = {"error": str(e)}
                failed.append(name)
            res["seconds"] = round(time.monotonic() - t0, 1)
            res["load_at_end"] = loadavg()
            out["measurements"][name] = res
            with open(path, "w") as f:  # after each one: a crash keeps what was measured
                json.dump(out, f, indent=1)
            print(f"podbench: {name}: done in {res['seconds']} s", file=sys.stderr, flush=True)
    finally:
        out["load_at_end"] = loadavg()
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        shutil.copyfile(path, os.path.join(results_root, "latest.json"))
        shutil.rmtree(env.tmp, ignore_errors=True)
    print(f"podbench: results in {path}", file=sys.stderr)
    merged = report.merge(results_root, out)
    if not args.no_docs:
        report.write_docs(docs, merged)
        print(f"podbench: tables regenerated in {docs}", file=sys.stderr)
    print(report.summary_text(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
