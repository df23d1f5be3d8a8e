"""Table of the end-to-end training runs written by bench/gpu/x4_train.sh (examples/train.py --out
files and PyTorch context_parallel JSON lines). Usage: python3 bench/gpu/train_report.py DIR
Prints markdown and writes DIR/train_report.json."""

import glob
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    return [(r["summary"], r["steps"]) for r in d["runs"]] if "runs" in d else [(d["summary"], d["steps"])]


def steady(summary, steps):
    return steps[summary["warmup"]:] or steps


def main(out):
    report = {"training": [], "loss_curve": None, "single_sequence": []}
    print("| data | mask | planner | plans used | step ms (mean, median) | tok/s/GPU | vs best static | loader wait (total) "
          "| token imbalance (mean, max) | plan prepare ms/step (mean, max; of which waiting for the GPU) | peak alloc GiB | GPU used first→last GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(out, "train_*_*.json"))):
        runs = load(path)
        step_s = {s["planner"]: s["mean_step_s"] for s, _ in runs}
        static = [v for k, v in step_s.items() if k in ("ring", "zigzag", "ulysses", "usp")]
        best = min(static) if static else None
        for s, st in runs:
            rows = steady(s, st)
            med = statistics.median(r["step_s"] for r in rows)
            plans = sorted({r["plan"] for r in rows})
            sp = best / s["mean_step_s"] if best else None  # no static planner ran: a dash
            g0, g1 = s["gpu_used_gib_first_last"]
            # Rows written before train.py recorded them have no token imbalance / prepare time.
            imb = [r["token_imbalance"] for r in rows if "token_imbalance" in r]
            prep = [r["prepare_s"] + r.get("evict_s", 0.0) for r in rows if "prepare_s" in r]
            wait = [r["prepare_wait_s"] for r in rows if "prepare_wait_s" in r]
            imb_s = f"{statistics.mean(imb):.3f}, {max(imb):.3f}" if imb else "–"
            prep_s = f"{statistics.mean(prep) * 1e3:.0f}, {max(prep) * 1e3:.0f}" if prep else "–"
            if wait:  # the part spent waiting for the GPU (train.py since session 18)
                prep_s += f" (wait {statistics.mean(wait) * 1e3:.0f})"
            print(f"| {s['dataset']} | {s['mask']} | {s['planner']} | {', '.join(plans)} | {s['mean_step_s'] * 1e3:.0f}, {med * 1e3:.0f} "
                  f"| {s['mean_tokens_per_s_per_gpu']:.0f} | {'–' if sp is None else f'{sp:.3f}'} | {s['loader_wait_s_total'] * 1e3:.1f} ms "
                  f"| {imb_s} | {prep_s} | {s['peak_mem_gib']:.2f} | {g0:.2f}→{g1:.2f} |")
            report["training"].append({**s, "median_step_s": med, "plans_used": plans, "speedup_vs_best_static": sp,
                                       "steps_measured": len(rows)})
    a, b = os.path.join(out, "loss_dcp.json"), os.path.join(out, "loss_single.json")
    if os.path.exists(a) and os.path.exists(b):
        (sa, ra), (sb, rb) = load(a)[0], load(b)[0]
        diffs = [abs(x["loss"] - y["loss"]) for x, y in zip(ra, rb)]
        rel = [d / abs(y["loss"]) for d, y in zip(diffs, rb)]
        lc = {"steps": len(diffs), "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs),
              "max_rel_diff": max(rel), "first_loss": [ra[0]["loss"], rb[0]["loss"]], "last_loss": [ra[-1]["loss"], rb[-1]["loss"]],
              "dcp_step_ms": sa["mean_step_s"] * 1e3, "single_step_ms": sb["mean_step_s"] * 1e3,
              "dcp_losses": [r["loss"] for r in ra], "single_losses": [r["loss"] for r in rb]}
        report["loss_curve"] = lc
        print(f"\nloss curve, {len(diffs)} steps, dcp on {sa['world']} GPUs vs one GPU: max |diff| {lc['max_abs_diff']:.4f} "
              f"(rel {lc['max_rel_diff']:.2e}), mean {lc['mean_abs_diff']:.4f}; loss {rb[0]['loss']:.4f} -> {rb[-1]['loss']:.4f} "
              f"(single), {ra[-1]['loss']:.4f} (dcp)")
    c = os.path.join(out, "seq_dcp.json")
    if os.path.exists(c):
        print("\n| one causal sequence | step ms | tok/s/GPU | peak GiB |\n|---|---|---|---|")
        for s, st in load(c):
            med = statistics.median(r["step_s"] for r in steady(s, st))
            print(f"| ours, {s['planner']} ({s['dataset']}) | {med * 1e3:.0f} | {s['mean_tokens_per_s_per_gpu']:.0f} | {s['peak_mem_gib']:.2f} |")
            report["single_sequence"].append({**s, "median_step_s": med})
        t = os.path.join(out, "torch_cp.jsonl")
        for line in open(t) if os.path.exists(t) else []:
            r = json.loads(line)
            report["single_sequence"].append(r)
            if "error" in r:
                print(f"| PyTorch context_parallel, {r['backend']} | error: {r['error'][:80]} | | |")
            else:
                print(f"| PyTorch context_parallel, {r['backend']} (reference point) | {r['step_ms']:.0f} | {r['tokens_per_s_per_gpu']:.0f} | {r['peak_gib']:.2f} |")
    with open(os.path.join(out, "train_report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
