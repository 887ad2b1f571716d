"""Shared by the peer scripts: the single-thread settings, the step counts of
docs/WORKLOADS.md's protocol, and the report line that run.sh parses:

    NAME: median X ms (min Y, max Z) over N steps

the same format kiln's criterion benches print (bench/src/lib.rs, StepTimes).
"""

import os
import time

# One thread everywhere, before JAX or PyTorch is imported. run.sh sets these too;
# the defaults make a script run on its own behave the same.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

QUICK = os.environ.get("QUICK", "") not in ("", "0")

# WORKLOADS.md: median over >= 200 steps after >= 20 warm-up steps (>= 50 for W3),
# and at least MIN_SECONDS of measurement so fast steps get many samples.
# QUICK=1 cuts everything to check that the harness works, not to measure.
STEPS = 20 if QUICK else 200
MIN_SECONDS = 0.0 if QUICK else 2.0
SEED = 0


def warmups(workload):
    if QUICK:
        return 5
    return 50 if workload == "w3" else 20


def time_steps(name, step, warmup, steps=None, min_seconds=None):
    """Runs `step` (which must block until its result is ready) `warmup` times,
    then at least `steps` times and at least `min_seconds`, timing each call;
    prints the report line and returns the median in ms."""
    steps = STEPS if steps is None else steps
    min_seconds = MIN_SECONDS if min_seconds is None else min_seconds
    for _ in range(warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < steps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return report(name, times)


def report(name, times):
    """Prints the report line for `times` (ms) and returns their median."""
    times = sorted(times)
    median = times[len(times) // 2]
    print(
        f"{name}: median {median:.3f} ms (min {times[0]:.3f}, max {times[-1]:.3f}) "
        f"over {len(times)} steps",
        flush=True,
    )
    return median


def selected(argv):
    """The workloads named on the command line (default: all)."""
    names = [a.lower() for a in argv[1:]]
    return set(names) if names else {"w2", "w3", "w4", "w5", "w6"}
