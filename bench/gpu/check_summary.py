#!/usr/bin/env python3
"""One line for a `dcp bench-gpu --check --json FILE` record: how many checked runs passed and
the worst relative errors against the CPU f64 reference.

    python3 bench/gpu/check_summary.py FILE LABEL
    -> LABEL: 11/12 pass; worst rel err o=1.2e-03 lse=3.0e-06 dq=2.5e-03 dkv=2.4e-03

Rows without a "check" key (other record kinds) are not counted; a run whose check is null
(not checked) counts as not passed. A missing file reads as no rows (0/0), so that a device
call whose run was cut short still prints its line. The GPU scripts' `summ` (bwd_switch.sh,
x1_final.sh, x2_check.sh, ...) is this.
"""

import json
import os
import sys

FIELDS = ("o", "lse", "dq", "dkv")


def summary(path, label):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    checks = [r.get("check") or {} for r in rows if "check" in r]
    ok = sum(1 for c in checks if c.get("pass"))
    worst = {k: max([c.get(k, 0) or 0 for c in checks] + [0]) for k in FIELDS}
    return f"{label}: {ok}/{len(checks)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in worst.items())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: check_summary.py FILE LABEL", file=sys.stderr)
        return 2
    print(summary(*argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
