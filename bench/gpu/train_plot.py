"""Plots of bench/gpu/x4_train.sh's output (needs matplotlib): the 50-step loss curve of dcp on N
GPUs against the single-GPU run, and step time per planner. Usage: python3 bench/gpu/train_plot.py DIR"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = sys.argv[1]
rep = json.load(open(os.path.join(out, "train_report.json")))
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
lc = rep.get("loss_curve")
if lc:
    a1.plot(lc["single_losses"], label="one GPU (PyTorch SDPA)", lw=2)
    a1.plot(lc["dcp_losses"], "--", label="dcp, 4 GPUs")
    ax = a1.twinx()
    ax.plot([abs(x - y) for x, y in zip(lc["dcp_losses"], lc["single_losses"])], ":", color="gray")
    ax.set_ylabel("|difference| (dotted)")
    a1.set_xlabel("step")
    a1.set_ylabel("loss")
    a1.set_title(f"loss, 50 steps: max |diff| {lc['max_abs_diff']:.1e}")
    a1.legend(loc="upper right")
tr = rep["training"]
cells = sorted({(t["dataset"], t["mask"]) for t in tr})
planners = ["dcp", "ring", "zigzag"]
w = 0.27
for i, p in enumerate(planners):
    ys = [next((t["mean_step_s"] * 1e3 for t in tr if (t["dataset"], t["mask"]) == c and t["planner"] == p), 0) for c in cells]
    a2.bar([j + (i - 1) * w for j in range(len(cells))], ys, w, label=p)
a2.set_xticks(range(len(cells)), [f"{d}\n{m}" for d, m in cells])
a2.set_ylabel("step time, ms (mean of 20)")
a2.set_title("0.85B model, 131K-token batches, 4 GPUs")
a2.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "train.png"), dpi=110)
print("wrote", os.path.join(out, "train.png"))
