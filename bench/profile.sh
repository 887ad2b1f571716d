#!/usr/bin/env bash
# Where the time goes: a `perf` profile of kiln's single-thread benches, one core,
# generated code named by its kernel (cranelift-jit writes /tmp/perf-PID.map under
# perf), the top symbols of each.
#
#   bench/profile.sh [w2 w3 w4 w5]     # default: all
#
# Needs perf (Debian: linux-perf). CORE=N pins to another core (default 0);
# SECONDS_PER=N profiles each bench N seconds (default 5). Profiles are kept in
# bench/.profile/ (`perf report -i bench/.profile/NAME.data` to look closer).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT="$HERE/.profile"
CORE=${CORE:-0}
SECONDS_PER=${SECONDS_PER:-5}
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(w2 w3 w4 w5)
command -v perf >/dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
mkdir -p "$OUT"

declare -A BIN
while read -r name path; do BIN[$name]=$path; done < <(
    cargo bench --manifest-path "$HERE/Cargo.toml" --no-run --message-format=json \
        2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])')

# bench, criterion filter, label
cases=(
    "w2 w2_step/batch_64/1_thread w2_step_batch_64"
    "w2 w2_step/batch_256/1_thread w2_step_batch_256"
    "w2 w2_forward/batch_64/1_thread w2_forward_batch_64"
    "w3 1_thread w3_step"
    "w4 1_thread w4_step"
    "w5 batch_64 w5_compile"
)
for c in "${cases[@]}"; do
    read -r bench filter label <<< "$c"
    printf '%s\n' "${WORKLOADS[@]}" | grep -qx "$bench" || continue
    echo "== $label"
    (cd "$HERE" && perf record -q -F 999 -o "$OUT/$label.data" \
        taskset -c "$CORE" "${BIN[$bench]}" --bench "$filter" --profile-time "$SECONDS_PER" \
        >/dev/null 2>&1)
    perf report -i "$OUT/$label.data" --no-children --sort symbol --percent-limit 1.5 \
        --stdio -q 2>/dev/null | sed -E 's/[[:space:]]+(-[[:space:]]+-)?[[:space:]]*$//' | grep -v '^$' | head -25
done
