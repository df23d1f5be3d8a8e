"""Rate against attended FLOPs per mask (session 26, call 2): dcp's sm90 kernels (mean of two
rounds) and cuDNN SDPA (round 1) on the same one-sequence shapes.
    python3 plot_rate_vs_size.py   (needs matplotlib; writes rate_vs_size.png)"""
import json, os, statistics as st
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
rows = {}
for f in ("kb1.jsonl", "kb2.jsonl"):
    for line in open(os.path.join(HERE, "call2", f)):
        r = json.loads(line)
        if r.get("kind") == "bench" and r["n_seqs"] == 1:
            rows.setdefault(r["mask"], {}).setdefault(r["attended_fwd_flops"], []).append(r)
cudnn = {}
for line in open(os.path.join(HERE, "call2", "torch.jsonl")):
    r = json.loads(line)
    if "cudnn_fwd_tflops" in r and r.get("cudnn_fwd_tflops") == r.get("cudnn_fwd_tflops"):
        cudnn.setdefault(r["mask"], []).append(r)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
for ax, d in zip(axes, ("fwd", "bwd")):
    for mask, pts in sorted(rows.items()):
        xs = sorted(pts)
        ys = [st.mean(r[f"{d}_tflops_per_gpu"] for r in pts[x]) for x in xs]
        ax.plot([x / 1e9 for x in xs], ys, "o-", label=f"dcp sm90, {mask}")
        for x, y in zip(xs, ys):
            ax.annotate(f"{round(pts[x][0]['tokens'] / 1024)}K", (x / 1e9, y), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
    for mask, rs in sorted(cudnn.items()):
        rs = sorted(rs, key=lambda r: r["attended_fwd_flops"])
        ax.plot([r["attended_fwd_flops"] / 1e9 for r in rs], [r[f"cudnn_{d}_tflops"] for r in rs],
                "x--", color="grey" if mask == "causal" else "black", label=f"cuDNN, {mask}")
    ax.set_xscale("log")
    ax.set_xlabel("attended forward GFLOP (one sequence)")
    ax.set_title(f"{ {'fwd': 'forward', 'bwd': 'backward'}[d]}, 1x H200, bf16, D 128, GQA 8:2")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("TFLOP/s on attended FLOPs")
axes[1].legend(fontsize=7, loc="lower right")
fig.tight_layout()
fig.savefig(os.path.join(HERE, "rate_vs_size.png"), dpi=110)
