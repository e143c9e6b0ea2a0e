"""Turns results into the tables of docs/performance.md. Each table sits between
`<!-- podbench:begin NAME -->` and `<!-- podbench:end NAME -->` and is rewritten whole; the prose around
them is not touched. Results accumulate in bench/results/merged.json (the latest run of every
measurement, each with its own date, machine and load), so that `--only X` refreshes X's table and
leaves the others, which still say when they were measured."""

import json
import os
import re

MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------------
# Formatting


def _f(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def _med(s, digits=0, scale=1.0):
    return "—" if not s else _f(s["median"] * scale, digits)


def _spread(s, digits=0, scale=1.0):
    if not s:
        return "—"
    return f"{_f(s['p25'] * scale, digits)}–{_f(s['p75'] * scale, digits)} ({_f(s['min'] * scale, digits)}–{_f(s['max'] * scale, digits)})"


def _mib(b):
    return "—" if b is None else f"{b / MIB:.1f}"


def _load(m):
    ld = m.get("load") or {}
    if not ld:
        return "load —"
    return f"1-min load {ld['load1_min']:.1f}–{ld['load1_max']:.1f}"


def _stamp(m):
    rounds = f", {m['rounds']} interleaved rounds" if "rounds" in m else ""
    return f"_Measured {m.get('_run', '?')}{' (--quick)' if m.get('_quick') else ''}, {_load(m)}{rounds}._"


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# Blocks


def _run(merged):
    runs = merged.get("_runs", {})
    if not runs:
        return "_No run yet._"
    stamp = max(runs)
    r = runs[stamp]
    m = r["machine"]
    v = m.get("versions", {})
    lines = [
        f"Latest run: {stamp}{' (--quick)' if r.get('quick') else ''}; 1-min load average at start "
        f"{r['load_at_start'][0]:.2f}, at end {r.get('load_at_end', ['?'])[0]}.",
        "",
        _table(["", ""], [
            ["machine", f"{m['cpu']}, {m['cpus']} CPUs, {_mib(m['memory_bytes'])} MiB, {m.get('virtualization') or ''}"],
            ["OS, kernel", f"{m.get('os')}, Linux {m['kernel']}"],
            ["podsight", m.get("podsight")],
            ["peers", ", ".join(f"{k} {v[k]}" for k in ("bpftrace", "prometheus-node-exporter", "xdp-tools") if v.get(k))],
            ["toolchain", ", ".join(f"{k} {v[k]}" for k in ("clang", "g++", "libbpf-dev") if v.get(k))],
        ]),
    ]
    return "\n".join(lines)


def _cost_block(m, reference):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = []
    for r in m["rows"]:
        ratio = r.get("ratio_to_" + reference) if reference else None
        rows.append([r["contender"], f"`{r['program']}`", _med(r["ns_per_run"]), _spread(r["ns_per_run"]),
                     _med(r.get("net_of_empty_ns")), _med(ratio, 2) if ratio else "—",
                     _med(r["runs_per_round"])])
    header = ["contender", "program", "ns/run (median)", "p25–p75 (min–max)", "net of empty program",
              f"ratio to {reference}" if reference else "ratio", "runs/round"]
    return f"{_stamp(m)} Workload: {m['workload']}.\n\n" + _table(header, rows)


def _cgroup_skb_block(m):
    out = _cost_block(m, None)
    tr = m.get("test_run")
    if tr:
        rows = [[r["case"], f"`{r['program']}`", _med(r["ns_per_run"]), _spread(r["ns_per_run"])] for r in tr["rows"]]
        out += (f"\n\nBPF_PROG_TEST_RUN ({tr['repeat']:,} runs per measurement, {tr['rounds']} measurements, "
                f"no run-time statistics, {_load(tr)}):\n\n" +
                _table(["packet", "program", "ns/run (median)", "p25–p75 (min–max)"], rows))
    return out


def _tcp_block(m):
    out = _cost_block(m, "bpftrace")
    if not m.get("podsight_tcp_family", False) and "error" not in m:
        out += ("\n\npodsight has no tcp family in this build: its row appears by itself once the agent "
                "holds programs named `tcp*`.")
    return out


def _storm_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = []
    for c, per in m["configs"].items():
        label = c if c != "empty programs" else f"empty programs ({', '.join(m['empty_hooks'])})"
        cpu, wall = per["cpu"], per["wall"]
        rows.append([label, _med(cpu["seconds"], 3), _spread(cpu["seconds"], 3),
                     _f((cpu["ratio"]["median"] - 1) * 100, 2) + " %",
                     f"{_f((cpu['ratio']['p25'] - 1) * 100, 2)} – {_f((cpu['ratio']['p75'] - 1) * 100, 2)} %",
                     _med(wall["seconds"], 3), _f((wall["ratio"]["median"] - 1) * 100, 1) + " %"])
    return (f"{_stamp(m)} Workload: {m['workload']}; BPF stats sysctl {m.get('bpf_stats_sysctl')}.\n\n" +
            _table(["configuration", "CPU s (median)", "p25–p75 (min–max)", "CPU slowdown",
                    "slowdown p25–p75", "wall s (median)", "wall slowdown"], rows))


def _xdp_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = [[r["config"], _med(r["rx_pps"]), _spread(r["rx_pps"]), _med(r["ratio_to_no_program"], 3),
             _spread(r["ratio_to_no_program"], 3), _med(r.get("ratio_to_empty_program"), 3),
             _med(r["sent_pps"])] for r in m["rows"]]
    out = (f"{_stamp(m)} {m['workload']}, {m['seconds_per_run']} s per run.\n\n" +
           _table(["XDP program on the receiving veth", "received pkt/s (median)", "p25–p75 (min–max)",
                   "ratio to no program", "ratio p25–p75 (min–max)", "ratio to empty program", "sent pkt/s"],
                  rows))
    crow = [[r["config"], _med(r["ns_per_packet"]), _spread(r["ns_per_packet"])] for r in m.get("cost_rows", [])]
    if crow:
        out += "\n\nCost per packet (BPF run-time statistics on, separate rounds):\n\n" + _table(
            ["program", "ns/packet (median)", "p25–p75 (min–max)"], crow)
    for name, why in m.get("unavailable", {}).items():
        out += f"\n\n{name}: not measured, it does not load here: {why}"
    if any(r["config"] == "xdp-bench pass, its program alone" for r in m["rows"]):
        out += ("\n\n\"xdp-bench pass, its program alone\": xdp-bench itself does not load on this kernel "
                "(above), so `podsight-bench xdp-bench-pass` loads the BPF object embedded in the xdp-bench "
                "binary with only its XDP program (`xdp_basic_prog`, configured as `xdp-bench pass`: "
                "action XDP_PASS, no-touch, no per-queue statistics) and attaches it natively; the code "
                "the kernel runs per packet is xdp-bench's.")
    return out


def _scrape_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows, mem = [], []
    for r in m["rows"]:
        if "memory" in r:
            mm = r["memory"]
            mem.append([f"{r['target_series']:,}", _mib(mm["podsight_rss_bytes"]), _mib(mm["podsight_peak_rss_bytes"]),
                        _mib(mm["node_exporter_rss_bytes"])])
            continue
        p, n = r["podsight"], r["node_exporter"]
        # Runs before the peak column was added have none.
        peaks = [_mib(x["peak_rss_bytes"]) if "peak_rss_bytes" in x else "—" for x in (p, n)]
        rows.append([f"{p['series']:,}", "gzip" if r["gzip"] else "plain", r["scrapers"], _f(p["p50_ms"], 1),
                     _f(p["p99_ms"], 1), _med(p["cpu_ms_per_scrape"], 1), _med(p["cpu_us_per_series"], 2), peaks[0],
                     f"{n['series']:,}", _f(n["p50_ms"], 1), _f(n["p99_ms"], 1), _med(n["cpu_us_per_series"], 2),
                     peaks[1], _f(r["cost_per_series_ratio"], 2)])
    out = (f"{_stamp(m)} Agent and node_exporter pinned to CPU {m['agent_cpu']}, scrapers to CPU "
           f"{m['scraper_cpu']}; series spread over {m['cgroups']} bench cgroups. Peak MiB: the most "
           "resident memory during that row's scrapes (VmHWM reset before them).\n\n" +
           _table(["podsight series", "encoding", "scrapers", "p50 ms", "p99 ms", "CPU ms/scrape",
                   "CPU µs/series", "peak MiB", "node_exporter series", "p50 ms", "p99 ms", "CPU µs/series",
                   "peak MiB", "podsight/node_exporter per series"], rows))
    out += ("\n\nResident memory after those scrapes (MiB; peak = the most during that size's scrapes; agent "
            "idle before "
            f"filling: {_mib(m.get('idle_rss_bytes'))}):\n\n" +
            _table(["podsight series", "podsight RSS", "podsight peak RSS", "node_exporter RSS"], mem))
    return out


def _resources_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = []
    for phase, per in m["rows"].items():
        p, n = per["podsight"], per["node_exporter"]
        rows.append([phase, _f(p["cpu_percent_of_core"], 3), _mib(p["rss_bytes"]), p["threads"], p["fds"],
                     _f(n["cpu_percent_of_core"], 3), _mib(n["rss_bytes"]), n["threads"], n["fds"]])
    return (f"_Measured {m.get('_run')}{' (--quick)' if m.get('_quick') else ''}, {_load(m)}; idle phases "
            f"{m['idle_seconds']} s, load phase {m['load_seconds']} s; series at the end: "
            f"podsight {m['series']['podsight']}, node_exporter {m['series']['node_exporter']}._\n\n" +
            _table(["phase", "podsight CPU % of a core", "RSS MiB", "threads", "fds",
                    "node_exporter CPU %", "RSS MiB", "threads", "fds"], rows))


def _conns_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = []
    for r in m["rows"]:
        p, n = r["usage"]["podsight"], r["usage"]["node_exporter"]
        rows.append([r["step"], f"{r['loopback_connections']:,}", f"{r['tracked']:,.0f}",
                     f"{p['cpu_percent_of_core']:.3f}", _mib(p["rss_bytes"]), _mib(p["peak_rss_bytes"]),
                     f"{r['scrape_ms']:.1f}", f"{n['cpu_percent_of_core']:.3f}", _mib(n["rss_bytes"])])
    return (f"{_stamp(m)} Connections held open in a network namespace of ours; each step measured over "
            f"{m['phase_seconds']} s scraped every {m['scraped_every_seconds']} s; agent config "
            f"`{json.dumps(m['config'])}` (every family on).\n\n" +
            _table(["step", "loopback connections", "tracked (`tcp_conns` entries)", "podsight CPU % of a core",
                    "RSS MiB", "peak RSS MiB", "scrape ms (wall, median of 5)", "node_exporter CPU %",
                    "node_exporter RSS MiB"], rows))


def _mapreads_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = [[f"`{r.get('map', 'exec_counts')}`", f"{r['entries']:,}", _med(r["batch_ms"], 2), _spread(r["batch_ms"], 2),
             _med(r["batch_ns_per_entry"]), _med(r["keybykey_ms"], 2), _spread(r["keybykey_ms"], 2),
             _med(r["keybykey_over_batch"], 2)] for r in m["rows"]]
    return (f"{_stamp(m)} Two layouts: a plain hash keyed like `exec_counts` (24-byte key, u64; the agent's is per-CPU), "
            f"`cgroup_skb_counts` a per-CPU hash (8-byte key, 32 bytes per CPU, summed over "
            f"{m['rows'][0]['ncpus'] if m['rows'] else '?'} possible CPUs as a scrape does).\n\n" +
            _table(["map", "entries", "batch ms", "p25–p75 (min–max)", "batch ns/entry", "key-by-key ms",
                    "p25–p75 (min–max)", "key-by-key / batch"], rows))


def _growth_block(m):
    if "error" in m:
        return f"_Failed: {m['error']}_"
    rows = []
    for who, s in m["summary"].items():
        def span(key):
            if f"{key}_first" not in s:
                return "—"
            text = f"{s[f'{key}_first']:,.0f} → {s[f'{key}_last']:,.0f}"
            return text + (f" (max {s[f'{key}_max']:,.0f})" if f"{key}_max" in s else "")
        rows.append([who, _mib(s["rss_first_bytes"]), _mib(s["rss_last_bytes"]), _mib(s["rss_max_bytes"]),
                     _f((s["rss_slope_bytes_per_min"] or 0) / 1024, 1), f"{s['fds_first']} → {s['fds_last']}",
                     f"{s['threads_first']} → {s['threads_last']}", _f(s["cpu_percent_of_core"], 2),
                     span("series"), span("map_entries")])
    what = ""
    if m.get("churn"):
        gc = m.get("config", {}).get("gc", {})
        what = (f" Each cycle in a new cgroup, removed after it ({m['workload_cycles']} cgroups); garbage "
                f"collection grace {gc.get('grace_period_seconds', '?')} s, every {gc.get('interval_seconds', '?')} s "
                f"(shortened from the agent's defaults: [configuration](configuration.md#gc-what-deleted-cgroups-leave-behind)).")
    return (f"_Measured {m.get('_run')}{' (--quick)' if m.get('_quick') else ''}, {_load(m)}; "
            f"{m['duration_seconds']:.0f} s, first tenth excluded as warm-up, {m['workload_cycles']} workload "
            f"cycles ({m.get('execs_per_cycle', 20)} execs, {m.get('conns_per_cycle', 200)} connections each).{what}_\n\n" +
            _table(["process", "RSS first MiB", "RSS last MiB", "RSS max MiB", "RSS slope KiB/min", "fds",
                    "threads", "CPU % of a core", "series", "map entries"], rows))


def _growth_flat(s):
    """No growth: RSS within 5 % + 1 MiB, fds and threads not up, and (where sampled) series and map
    entries in the last fifth of the run no more than 20 % above the first fifth (medians)."""
    flat = (s["rss_last_bytes"] <= 1.05 * s["rss_first_bytes"] + MIB and s["fds_last"] <= s["fds_first"]
            and s["threads_last"] <= s["threads_first"])
    for key in ("series", "map_entries"):
        if s.get(f"{key}_first_fifth") is not None:
            flat = flat and s[f"{key}_last_fifth"] <= 1.2 * s[f"{key}_first_fifth"] + 10
    return flat


def _targets_block(merged):
    ms = merged
    rows = []

    def cost(name, label, program_prefix, limit, peer=True):
        m = ms.get(name)
        if not m or "error" in m:
            rows.append([label, f"median < {limit} ns" + (", ≤ bpftrace" if peer else ""), "not measured", ""])
            return
        for r in m["rows"]:
            if not r["contender"].startswith("podsight") or not r["program"].startswith(program_prefix):
                continue
            med = r["ns_per_run"]["median"] if r["ns_per_run"] else None
            net = r.get("net_of_empty_ns", {}) or {}
            ratio = r.get("ratio_to_bpftrace")
            text = f"{_f(med)} ns ({_f(net.get('median'))} net of empty)"
            ok = med is not None and net.get("median") is not None and net["median"] < limit
            if ratio:
                text += f", {ratio['median']:.2f}× bpftrace"
                ok = ok and ratio["median"] <= 1.0
            rows.append([f"{label} `{r['program']}`", f"median < {limit} ns" + (", ≤ bpftrace" if ratio else ""),
                         text, "met" if ok else "missed"])

    cost("exec_cost", "exec", "exec", 100)
    cost("tcp_cost", "tcp", "tcp", 100)
    cost("cgroup_skb_cost", "cgroup_skb", "cgroup_skb", 50, peer=False)
    for name, label in (("exec_storm", "exec storm slowdown"), ("tcp_storm", "TCP storm slowdown")):
        m = ms.get(name)
        if m and "ratio" in m:
            s = (m["ratio"]["median"] - 1) * 100
            rows.append([label, "< 2 %", f"{s:.2f} % CPU time (p25–p75 {(m['ratio']['p25'] - 1) * 100:.2f}–"
                         f"{(m['ratio']['p75'] - 1) * 100:.2f} %); wall {(m['wall_ratio']['median'] - 1) * 100:.1f} %",
                         "met" if s < 2 else "missed"])
    m = ms.get("xdp")
    if m and "rows" in m:
        pod = [r for r in m["rows"] if r["config"] == "podsight"]
        if pod:
            r = pod[0]["ratio_to_no_program"]["median"]
            peers = {x["config"]: x["ratio_to_no_program"]["median"] for x in m["rows"]
                     if x["config"].startswith("xdp-")}
            bench = [v for k, v in peers.items() if k.startswith("xdp-bench")]
            rows.append(["XDP throughput", "≥ 97 % of no program, ≥ xdp-bench pass",
                         f"{r * 100:.1f} % (" + ", ".join(f"{k} {v * 100:.1f} %" for k, v in peers.items()) + ")",
                         "met" if r >= 0.97 and (not bench or r >= bench[0]) else "missed"])
            cost_of = {x["config"]: x["ns_per_packet"] for x in m.get("cost_rows", [])}
            if cost_of.get("podsight") and cost_of.get("empty program"):
                own, empty = cost_of["podsight"]["median"], cost_of["empty program"]["median"]
                rows.append(["XDP cost per packet", "median < 50 ns",
                             f"{own:.0f} ns ({own - empty:.0f} net of empty)",
                             "met" if own - empty < 50 else "missed"])
        else:
            rows.append(["XDP throughput", "≥ 97 % of no program, ≥ xdp-bench pass", "not measured", ""])
    m = ms.get("scrape")
    if m and "rows" in m:
        for r in m["rows"]:
            if r.get("target_series") == 100000 and "podsight" in r and r["scrapers"] == 1 and not r["gzip"]:
                p50 = r["podsight"]["p50_ms"]
                cpu = r["podsight"]["cpu_ms_per_scrape"]["median"]
                rows.append(["100k-series scrape", "< 150 ms p50 on one core",
                             f"p50 {p50:.0f} ms wall on a shared core; {cpu:.0f} ms CPU per scrape",
                             "met" if p50 < 150 else ("met on CPU time" if cpu < 150 else "missed")])
        ratios = [r["cost_per_series_ratio"] for r in m["rows"] if "podsight" in r and r["target_series"] >= 10000
                  and r["cost_per_series_ratio"]]
        if ratios:
            rows.append(["cost per series", "below node_exporter's", f"{min(ratios):.2f}–{max(ratios):.2f}× "
                         "node_exporter's (≥ 10k series)", "met" if max(ratios) < 1 else "missed"])
        big = [r["memory"] for r in m["rows"] if "memory" in r and r["target_series"] == 100000]
        # How Prometheus scrapes: gzip, one scraper per replica.
        zipped = [r["podsight"]["peak_rss_bytes"] for r in m["rows"] if r.get("target_series") == 100000
                  and "podsight" in r and r["gzip"] and r["scrapers"] == 1 and "peak_rss_bytes" in r["podsight"]]
        if big:
            peak = zipped[0] if zipped else big[0]["podsight_peak_rss_bytes"]
            during = "during gzip scrapes" if zipped else "since start"
            rows.append(["RSS at 100k series", "< 30 MB (the target is at 100k tracked connections: below)",
                         f"{_mib(big[0]['podsight_rss_bytes'])} MiB after (peak {_mib(peak)} {during})",
                         "met" if peak < 30e6 else "missed"])
    m = ms.get("tcp_conns")
    if m and "rows" in m:
        big = [r for r in m["rows"] if r["loopback_connections"] >= 50000]
        if big:
            r = big[-1]
            p, n = r["usage"]["podsight"], r["usage"]["node_exporter"]
            rows.append(["RSS at 100k tracked connections", "< 30 MB",
                         f"{_mib(p['rss_bytes'])} MiB (peak {_mib(p['peak_rss_bytes'])}) at {r['tracked']:,.0f} "
                         f"tracked; node_exporter {_mib(n['rss_bytes'])} MiB",
                         "met" if p["peak_rss_bytes"] < 30e6 else "missed"])
    m = ms.get("resources")
    if m and "rows" in m:
        idle = m["rows"]["idle (not scraped)"]
        p, n = idle["podsight"], idle["node_exporter"]
        rows.append(["idle memory", "below node_exporter's", f"{_mib(p['rss_bytes'])} vs {_mib(n['rss_bytes'])} MiB",
                     "met" if p["rss_bytes"] < n["rss_bytes"] else "missed"])
        rows.append(["idle CPU", "< 0.2 % of a core", f"{p['cpu_percent_of_core']:.3f} %",
                     "met" if p["cpu_percent_of_core"] < 0.2 else "missed"])
    for name, label in (("growth", "growth"), ("growth_churn", "growth with cgroup churn")):
        m = ms.get(name)
        if not m or "summary" not in m:
            continue
        s = m["summary"]["podsight"]
        slope = (s["rss_slope_bytes_per_min"] or 0) / 1024
        text = (f"RSS {_mib(s['rss_first_bytes'])} → {_mib(s['rss_last_bytes'])} MiB ({slope:.1f} KiB/min), "
                f"fds {s['fds_first']} → {s['fds_last']}, threads {s['threads_first']} → {s['threads_last']}")
        if m.get("churn") and "map_entries_first_fifth" in s:
            text += (f", map entries {s['map_entries_first_fifth']:,.0f} → {s['map_entries_last_fifth']:,.0f}, "
                     f"series {s['series_first_fifth']:,.0f} → {s['series_last_fifth']:,.0f} "
                     f"(medians of first and last fifths) over {m['workload_cycles']} cgroups")
        rows.append([label, f"none over the run ({m['duration_seconds']:.0f} s)", text,
                     "met" if _growth_flat(s) else "missed"])
    return _table(["target", "goal", "measured", ""], rows)


BLOCKS = {
    "run": lambda merged: _run(merged),
    "targets": lambda merged: _targets_block(merged),
    "exec_cost": lambda merged: _cost_block(merged["exec_cost"], "bpftrace"),
    "exec_profile": lambda merged: _cost_block(merged["exec_profile"], None),
    "cgroup_skb_cost": lambda merged: _cgroup_skb_block(merged["cgroup_skb_cost"]),
    "cgroup_skb_profile": lambda merged: _cost_block(merged["cgroup_skb_profile"], None),
    "tcp_cost": lambda merged: _tcp_block(merged["tcp_cost"]),
    "tcp_profile": lambda merged: _cost_block(merged["tcp_profile"], None),
    "exec_storm": lambda merged: _storm_block(merged["exec_storm"]),
    "tcp_storm": lambda merged: _storm_block(merged["tcp_storm"]),
    "xdp": lambda merged: _xdp_block(merged["xdp"]),
    "scrape": lambda merged: _scrape_block(merged["scrape"]),
    "resources": lambda merged: _resources_block(merged["resources"]),
    "mapreads": lambda merged: _mapreads_block(merged["mapreads"]),
    "tcp_conns": lambda merged: _conns_block(merged["tcp_conns"]),
    "growth": lambda merged: _growth_block(merged["growth"]),
    "growth_churn": lambda merged: _growth_block(merged["growth_churn"]),
}


def merge(results_root, run):
    """Adds this run's measurements to bench/results/merged.json and returns the merged view."""
    path = os.path.join(results_root, "merged.json")
    merged = {}
    if os.path.exists(path):
        with open(path) as f:
            merged = json.load(f)
    merged.setdefault("_runs", {})[run["started"]] = {k: run.get(k) for k in
                                                       ("machine", "quick", "load_at_start", "load_at_end")}
    for name, m in run["measurements"].items():
        m = dict(m)
        m["_run"] = run["started"]
        m["_quick"] = run.get("quick", False)
        merged[name] = m
    with open(path, "w") as f:
        json.dump(merged, f, indent=1)
    return merged


def write_docs(docs_path, merged):
    with open(docs_path) as f:
        text = f.read()

    def replace(match):
        name = match.group(1)
        if name not in BLOCKS or (name not in ("run", "targets") and name not in merged):
            return match.group(0)
        try:
            body = BLOCKS[name](merged)
        except (KeyError, TypeError, IndexError) as e:
            body = f"_Could not render: {e!r}_"
        return f"<!-- podbench:begin {name} -->\n{body}\n<!-- podbench:end {name} -->"

    text = re.sub(r"<!-- podbench:begin (\w+) -->.*?<!-- podbench:end \1 -->", replace, text, flags=re.S)
    with open(docs_path, "w") as f:
        f.write(text)


def summary_text(run):
    """A short account on stdout at the end of a run."""
    lines = [f"run {run['started']}: load at start {run['load_at_start']}, at end {run.get('load_at_end')}"]
    merged = {k: dict(v, _run=run["started"], _quick=run.get("quick")) for k, v in run["measurements"].items()}
    merged["_runs"] = {}
    lines.append(_targets_block(merged))
    for name, m in run["measurements"].items():
        if "error" in m:
            lines.append(f"{name}: FAILED: {m['error']}")
    return "\n".join(lines)
