"""podsight's benchmark suite; `bench/run.sh` runs it (see docs/performance.md)."""
