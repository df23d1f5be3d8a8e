"""Does planning keep up with training? Runs dcp.data's loader over built-in batches while the
"training step" sleeps a fixed time, and reports how long the loop waited for plans.

    python examples/loader_bench.py --world 4 --dataset longalign --step-s 1.0 --batches 12

No GPU needed (plans only). Prints one line per batch and a summary (JSON with --out).
"""

import argparse
import json
import time

import dcp
from dcp.data import PlanningDataLoader


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--planner", default="dcp")
    ap.add_argument("--dataset", default="longalign")
    ap.add_argument("--mask", default="causal")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--step-s", type=float, default=1.0, help="simulated training step time")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ahead", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    planner = dcp.Planner(a.world, nodes=a.nodes, heads=16, kv_heads=4, head_dim=128, planner=a.planner, mask=a.mask)
    t0 = time.perf_counter()
    loader = PlanningDataLoader(planner, dataset=a.dataset, num_batches=a.batches, rank=0, as_torch=False,
                                threads=a.threads, ahead=a.ahead)
    waits = []
    for b in loader:
        waits.append(b.wait_s)
        print(f"batch {b.index:3d}: {len(b.lengths):3d} seqs, {sum(b.lengths)} tokens, plan {b.plan.planner:11s} "
              f"waited {b.wait_s * 1e3:8.1f} ms", flush=True)
        time.sleep(a.step_s)
    total = time.perf_counter() - t0
    s = {"world": a.world, "planner": a.planner, "dataset": a.dataset, "mask": a.mask, "batches": a.batches,
         "step_s": a.step_s, "threads": a.threads, "ahead": a.ahead, "first_wait_s": waits[0],
         "later_wait_s_total": sum(waits[1:]), "later_wait_s_max": max(waits[1:] or [0.0]), "wall_s": total}
    print("summary " + json.dumps(s))
    if a.out:
        json.dump(s, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
