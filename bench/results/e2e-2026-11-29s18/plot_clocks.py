"""SM clock and board power of both GPUs over a call (nvidia-smi samples, 250 ms), with the
call's phases shaded: python3 plot_clocks.py SMI_CSV OUT_PNG [START-END:LABEL ...] (times hh:mm:ss)."""
import sys
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out, phases = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = [l.strip().split(", ") for l in open(src) if l.count(",") >= 5]
    t0 = datetime.strptime(rows[0][0], "%Y/%m/%d %H:%M:%S.%f")
    day = rows[0][0][:10]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for g in sorted({r[1] for r in rows}):
        pts = [((datetime.strptime(r[0], "%Y/%m/%d %H:%M:%S.%f") - t0).total_seconds(),
                float(r[2].split()[0]), float(r[3].split()[0])) for r in rows if r[1] == g]
        a1.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=f"GPU {g}")
        a2.plot([p[0] for p in pts], [p[2] for p in pts], lw=1, label=f"GPU {g}")
    for ph in phases:
        span, label = ph.rsplit(":", 1)
        s, e = (datetime.strptime(f"{day} {x}", "%Y/%m/%d %H:%M:%S") for x in span.split("-"))
        s, e = (s - t0.replace(microsecond=0)).total_seconds(), (e - t0.replace(microsecond=0)).total_seconds()
        for ax in (a1, a2):
            ax.axvspan(s, e, color="0.9", zorder=0)
        a1.text((s + e) / 2, 400, label, ha="center", fontsize=8)
    a1.axhline(1980, color="0.5", ls=":", lw=1)
    a1.set_ylabel("SM clock, MHz")
    a1.set_ylim(300, 2100)
    a2.axhline(700, color="0.5", ls=":", lw=1)
    a2.set_ylabel("board power, W")
    a2.set_xlabel("seconds into the call")
    a1.legend(loc="upper right", fontsize=8)
    a1.set_title("2x H200: under sustained tensor work the card sits at its 700 W cap and its clock drops to ~1 500-1 750 MHz")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
