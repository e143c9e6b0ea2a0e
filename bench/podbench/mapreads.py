"""Map reads: one scrape-time walk of maps keyed like exec_counts but shared (a plain hash, 24-byte key, u64)
and cgroup_skb_counts (a per-CPU hash, 8-byte key, 32 bytes per CPU), by BPF_MAP_LOOKUP_BATCH and by
get_next_key + lookup, at 10k, 100k and 1M entries, through podsight_core's bpf/maps.hpp
(podsight-bench mapread). The two methods alternate within each round."""

from .common import LoadWatch, summary


def mapreads(env):
    rounds = env.n_rounds(3, 7)
    with LoadWatch() as load:
        out = env.tool("mapread", "--sizes", "10000,100000,1000000", "--rounds", rounds, timeout=3600)
    rows = []
    for s in out["sizes"]:
        ratios = [k / b for b, k in zip(s["batch_seconds"], s["keybykey_seconds"])]
        rows.append({"map": s["map"], "entries": s["entries"], "ncpus": s["ncpus"],
                     "batch_ms": summary([x * 1e3 for x in s["batch_seconds"]]),
                     "keybykey_ms": summary([x * 1e3 for x in s["keybykey_seconds"]]),
                     "batch_ns_per_entry": summary([x * 1e9 / s["entries"] for x in s["batch_seconds"]]),
                     "keybykey_over_batch": summary(ratios)})
    return {"rounds": rounds, "load": load.result(), "rows": rows}
