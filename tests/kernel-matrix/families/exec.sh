# Kernel-matrix expectations of the exec family (sourced by the VM's /init, and by the host script to
# read `files` and `config`). A family file defines:
#   family            the name in /readyz and in podsight_program_attached
#   best_variant REL  the variant the agent must pick on kernel release REL (uname -r)
#   workload          what to run once the agent is attached (helpers: in_cgroup, run_times; the
#                     programs of tests/kernel-matrix/workloads/*.c are in /bin)
#   expect            lines "METRIC LABEL="VALUE"... = COUNT": the scrape must then hold exactly one
#                     such series with exactly that value; "= +COUNT": it grew by exactly COUNT
#                     during the workload (for counters other families' workloads move too)
# and may define `setup` (run before the agent starts, e.g. to create interfaces), `files` (host
# binaries to add to the initramfs, with their libraries) and `config` (JSON members of "programs").
family=exec

best_variant() {
	case "$1" in
	*) echo tp_btf ;; # BTF-typed raw tracepoints: every matrix kernel (>= 5.5) has them
	esac
}

# /bin/pxmatrix (tests/kernel-matrix/workloads/pxmatrix.c) does nothing; its comm is "pxmatrix".
# The first 37 are counted in the hash; the scrape between gives the key its per-CPU slot
# (bpf/shared/exec.h), where the next 37 are counted.
workload() {
	in_cgroup matrix-exec run_times 37 /bin/pxmatrix &&
		wget -q -O /dev/null "http://127.0.0.1:$PORT/metrics" &&
		in_cgroup matrix-exec run_times 37 /bin/pxmatrix
}

expect='
podsight_process_execs_total cgroup="/matrix-exec" comm="pxmatrix" = 74
'
