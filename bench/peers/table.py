"""Reads the report lines of a run.sh run and prints the side-by-side table.

    python table.py criterion DIR       # kiln's W6 lines from criterion's JSON in DIR
    python table.py table KILN1 PEERS KILN2

Report lines: `NAME: median X ms (min Y, max Z) over N steps`. Kiln's names end in
`/1_thread` (`w2_step/batch_64/1_thread`); a peer's start with the peer
(`jax/w2_step/batch_64`).
"""

import json
import os
import re
import sys

LINE = re.compile(
    r"^(?P<name>\S+): median (?P<median>[0-9.]+) ms \(min (?P<min>[0-9.]+), "
    r"max (?P<max>[0-9.]+)\) over (?P<n>\d+) steps"
)
PEERS = ["jax", "torch", "torch_fused"]
TITLES = {"jax": "JAX jit", "torch": "PyTorch eager", "torch_fused": "PyTorch fused opt."}
ORDER = ["w2_step", "w2_forward", "w3_step", "w4_step", "w5_compile", "w6_gemm"]
GEMM_SHAPES = ["256x256x256", "1024x1024x1024", "64x784x128", "64x128x64"]


def parse(path):
    """{key: median ms} for the report lines in `path`, by peer."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            name, median = m["name"], float(m["median"])
            if name.endswith("/1_thread"):
                out.setdefault("kiln", {})[name[: -len("/1_thread")]] = median
            else:
                peer, _, key = name.partition("/")
                out.setdefault(peer, {})[key] = median
    return out


def criterion_lines(home):
    """Kiln's single-thread W6 figures from criterion's JSON under `home`, as report
    lines: criterion's median estimate of the time per iteration, and the min and
    max of its per-sample means."""
    for shape in GEMM_SHAPES:
        d = os.path.join(home, "w6_gemm", "kiln_1_thread", shape, "new")
        try:
            with open(os.path.join(d, "estimates.json")) as f:
                median = json.load(f)["median"]["point_estimate"] / 1e6
            with open(os.path.join(d, "sample.json")) as f:
                s = json.load(f)
        except (OSError, KeyError, ValueError):
            continue
        means = [t / i / 1e6 for t, i in zip(s["times"], s["iters"])]
        print(f"w6_gemm/{shape}/1_thread: median {median:.4f} ms (min {min(means):.4f}, "
              f"max {max(means):.4f}) over {int(sum(s['iters']))} steps")


def ratio(r):
    """kiln / peer, as a fraction where kiln is more than 100 times faster (W5)."""
    return f"1/{1 / r:.0f}" if r < 0.01 else f"{r:.2f}"


def fmt(ms):
    if ms is None:
        return "–"
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def table(kiln1_path, peers_path, kiln2_path):
    k1 = parse(kiln1_path).get("kiln", {})
    k2 = parse(kiln2_path).get("kiln", {})
    peers = parse(peers_path)
    keys = set(k1) | set(k2)
    for p in PEERS:
        keys |= set(peers.get(p, {}))
    def rank(key):
        group, _, rest = key.partition("/")
        nums = [int(n) for n in re.findall(r"\d+", rest)]
        # GEMMs in WORKLOADS.md's order (squares, then W2's shapes); others by size.
        shape = GEMM_SHAPES.index(rest) if rest in GEMM_SHAPES else 0
        return (ORDER.index(group) if group in ORDER else 99, shape, nums, key)
    head = ["workload", "kiln #1", "kiln #2", "drift"]
    for p in PEERS:
        head += [TITLES[p], f"kiln/{p}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key in sorted(keys, key=rank):
        a, b = k1.get(key), k2.get(key)
        both = [v for v in (a, b) if v is not None]
        kiln = sum(both) / len(both) if both else None
        drift = f"{(b / a - 1) * 100:+.0f}%" if a and b else "–"
        row = [key, fmt(a), fmt(b), drift]
        for p in PEERS:
            v = peers.get(p, {}).get(key)
            row += [fmt(v), ratio(kiln / v) if kiln and v else "–"]
        print("| " + " | ".join(row) + " |")
    print()
    print("Medians in ms per step, single thread, one pinned core (w5_compile: ms from "
          "building the W2 step to its first result, each in a fresh process). kiln/peer "
          "divides the mean of kiln's two passes by the peer's median (below 1: kiln is "
          "faster); drift is kiln's pass 2 against pass 1.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["criterion"]:
        criterion_lines(sys.argv[2])
    elif sys.argv[1:2] == ["table"]:
        table(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
