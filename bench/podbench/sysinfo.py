"""The machine, kernel and versions a run measured, for the record in docs/performance.md."""

import os
import platform
import subprocess


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def _mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _dpkg_version(pkg):
    return _first_line(["dpkg-query", "-W", "-f=${Version}", pkg])


def collect(env):
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_bytes": _mem_total(),
        "kernel": platform.release(),
        "os": _os_release(),
        "virtualization": _first_line(["systemd-detect-virt"]),
        "podsight": _first_line([env.agent_bin, "--version"]),
        "versions": {p: _dpkg_version(p) for p in
                     ("bpftrace", "prometheus-node-exporter", "xdp-tools", "libbpf-dev", "clang", "g++")},
    }
