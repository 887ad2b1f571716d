#!/usr/bin/env bash
# The peer harness (docs/WORKLOADS.md, "Measurement protocol"): kiln, JAX and
# PyTorch on W2, W3, W4, W5 (JAX only) and W6 in one run, single-threaded on one pinned core,
# alternating kiln, peers, kiln again so the drift of the machine shows; prints
# one table of medians and ratios. Optional for users, not part of CI.
#
#   bench/peers/run.sh [w2 w3 w4 w5 w6]     # default: all
#
# Environment:
#   QUICK=1           smoke run: few steps, short criterion times (checks the harness,
#                     measures nothing)
#   CORE=N            the core to pin to (default 0)
#   PYTHON=python3.x  the interpreter for the virtual environment (default python3)
#   CARGO_TARGET_DIR  honoured by the build as usual
#   KILN_BENCH_BINS=DIR  use prebuilt criterion binaries DIR/{w2,w3,w4,w5,w6} instead of
#                     building (for development; a fresh clone builds)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV="$HERE/.venv"
OUT="$HERE/.out"
CORE=${CORE:-0}
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(w2 w3 w4 w5 w6)
wants() { local w; for w in "${WORKLOADS[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
say() { echo "== $*" >&2; }

command -v taskset >/dev/null || { echo "taskset not found (util-linux)" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$OUT"/criterion1 "$OUT"/criterion2

# --- 1. virtual environment with the pinned peers --------------------------------
stamp="$VENV/.requirements.sha256"
want_sum=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want_sum" ]; then
    say "virtual environment: $VENV"
    [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
    extra=()
    # PyTorch's CPU-only wheels (small) when its index is reachable; PyPI's default
    # build otherwise (same version, larger: it brings the CUDA libraries).
    if "$VENV/bin/python" -c 'import urllib.request as u; u.urlopen("https://download.pytorch.org/whl/cpu/", timeout=5)' 2>/dev/null; then
        extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
    else
        say "PyTorch CPU index unreachable: using the default index"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "${extra[@]}" -r "$HERE/requirements.txt"
    echo "$want_sum" > "$stamp"
fi
PY="$VENV/bin/python"

# --- 2. kiln's criterion benches --------------------------------------------------
declare -A BIN
if [ -n "${KILN_BENCH_BINS:-}" ]; then
    for b in w2 w3 w4 w5 w6; do BIN[$b]="$KILN_BENCH_BINS/$b"; done
else
    say "building kiln's benches (cargo bench --no-run)"
    cargo bench --manifest-path "$ROOT/bench/Cargo.toml" --no-run \
        --message-format=json-render-diagnostics > "$OUT/build.json"
    while read -r name path; do BIN[$name]=$path; done < <("$PY" - "$OUT/build.json" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
PYEOF
)
fi

# --- 3. kiln, peers, kiln again, one thread on one core ---------------------------
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 JAX_PLATFORMS=cpu
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
[ -n "$QUICK" ] && export QUICK=1
if [ -n "$QUICK" ]; then
    crit=(--warm-up-time 0.2 --measurement-time 0.5 --sample-size 10 --noplot)
    crit_w3=("${crit[@]}")
else
    # W3 steps take tens of ms: 8 s gives the protocol's 200 steps.
    crit=(--warm-up-time 1 --measurement-time 3 --noplot)
    crit_w3=(--warm-up-time 1 --measurement-time 8 --noplot)
fi
gemm_filter='kiln_1_thread/(256x256x256|1024x1024x1024|64x784x128|64x128x64)$'

# W5: compile to first result, each time in a fresh process (`w5 --fresh`), one
# report line.
w5_pass() {
    local i times=()
    [ -x "${BIN[w5]:-}" ] || { echo "# kiln w5: no bench binary" >&2; return 1; }
    say "kiln: w5"
    for i in $(seq "$([ -n "$QUICK" ] && echo 3 || echo 11)"); do
        times+=("$(cd "$ROOT/bench" && taskset -c "$CORE" "${BIN[w5]}" --fresh)") || return 1
    done
    PYTHONPATH="$HERE" "$PY" -c 'import sys, common
common.report("w5_compile/batch_64/1_thread", [float(t) for t in sys.argv[1:]])' "${times[@]}"
}

kiln_pass() {  # $1: pass number
    local log="$OUT/kiln$1.log" home="$OUT/criterion$1" b args filter
    : > "$log"
    for b in w2 w3 w4 w5 w6; do
        wants "$b" || continue
        if [ "$b" = w5 ]; then
            w5_pass >> "$log" || echo "# kiln w5 failed" | tee -a "$log" >&2
            continue
        fi
        if [ ! -x "${BIN[$b]:-}" ]; then
            echo "# kiln $b: no bench binary" | tee -a "$log" >&2
            continue
        fi
        args=("${crit[@]}"); filter=1_thread
        [ "$b" = w3 ] && args=("${crit_w3[@]}")
        [ "$b" = w6 ] && filter=$gemm_filter
        say "kiln pass $1: $b"
        # criterion's binaries run from the package root, as under cargo bench.
        (cd "$ROOT/bench" && CRITERION_HOME="$home" taskset -c "$CORE" \
            "${BIN[$b]}" --bench "$filter" "${args[@]}") > "$log.$b" 2>&1 \
            || { echo "# kiln $b failed: see $log.$b" | tee -a "$log" >&2; continue; }
        grep ': median ' "$log.$b" >> "$log" || true
        [ "$b" = w6 ] && "$PY" "$HERE/table.py" criterion "$home" >> "$log"
    done
    cat "$log" >&2
}

peers=()
for w in w2 w3 w4 w5 w6; do wants "$w" && peers+=("$w"); done

kiln_pass 1
: > "$OUT/peers.log"
for script in jax_peer.py torch_peer.py; do
    say "peer: $script ${peers[*]}"
    taskset -c "$CORE" "$PY" "$HERE/$script" "${peers[@]}" 2>"$OUT/${script%.py}.err" \
        | tee -a "$OUT/peers.log" >&2 \
        || echo "# $script failed: see $OUT/${script%.py}.err" | tee -a "$OUT/peers.log" >&2
done
kiln_pass 2

# --- 4. the table ----------------------------------------------------------------
echo
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+changes"
echo "Peer harness, $(date -u +%Y-%m-%d), kiln $rev, core $CORE of $(getconf _NPROCESSORS_ONLN): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
[ -n "$QUICK" ] && echo "QUICK=1: smoke run, few steps: not a measurement"
grep '^# ' "$OUT/peers.log" | grep -E '^# (jax|torch) ' || true
echo
"$PY" "$HERE/table.py" table "$OUT/kiln1.log" "$OUT/peers.log" "$OUT/kiln2.log"
