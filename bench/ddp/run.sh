#!/usr/bin/env bash
# Data-parallel speed-up (issue: MPI data-parallel training): W2 at global batch
# 256 and W7 at global batch 512, one process on one thread against `mpirun -np 2`
# (one thread per rank), in one run: single, MPI, single again, so the drift of
# the machine shows. Needs OpenMPI (see README.md, "Data-parallel training").
#
#   bench/ddp/run.sh [NP]        # default NP=2
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NP=${1:-2}
cd "$ROOT"
cargo build --release --features mpi --example ddp_timing >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/ddp_timing
MPIRUN=(mpirun -np "$NP" --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
echo "# $(date -u +%F) $(nproc) cores, $NP ranks"
"$BIN" single | tee /tmp/kiln-ddp-single1.txt
"${MPIRUN[@]}" "$BIN" mpi | tee /tmp/kiln-ddp-mpi.txt
"$BIN" single | tee /tmp/kiln-ddp-single2.txt
# For reference: one process using NP threads inside its kernels.
"$BIN" single "$NP"
# Speed-up against the mean of the two single-process passes.
python3 - <<'PY'
import re
def steps(path):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(W\d) global batch \d+: step ([\d.]+) ms", open(path).read())}
a, b, m = steps("/tmp/kiln-ddp-single1.txt"), steps("/tmp/kiln-ddp-single2.txt"), steps("/tmp/kiln-ddp-mpi.txt")
for w in m:
    single = (a[w] + b[w]) / 2
    print(f"{w}: single {a[w]:.3f} / {b[w]:.3f} ms (drift {b[w]/a[w]:.2f}x), mpi {m[w]:.3f} ms: speed-up {single/m[w]:.2f}x")
PY
