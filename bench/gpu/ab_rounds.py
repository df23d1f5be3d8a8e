#!/usr/bin/env python3
"""Alternated A/B of kernel variants in one device call: each variant's checks against the CPU f64
reference, then `dcp kernel-bench` (or any `dcp` timing command) for every variant in rotating
order, round after round, and the tables of bench/gpu/ab_table.py.

    python3 bench/gpu/ab_rounds.py --dcp BIN --out DIR --bench "ARGS" [options] VARIANT [VARIANT ...]

A VARIANT is NAME or NAME:SPEC,SPEC,... (the first is the base of the tables). A SPEC is
  ENV=VALUE           an environment variable of the variant's runs (names starting DCP_ or CUDA_);
  fwd:NAME=VALUE      `#define NAME VALUE` in front of kernels/attn_fwd_sm90.cu;
  fwd-short:NAME=V    the same inside `#ifdef FWD_LATEREL` (the short-task kernels: the host
                      defines FWD_LATEREL for those only);
  fwd-long:NAME=V     the same inside `#ifndef FWD_LATEREL` (the plain and half-tile kernels);
  bwd:NAME=VALUE      `#define` in front of kernels/bwd_sm90.cuh, which the executor puts before
                      attn_bwd_sm90.cu (and the cluster kernel): so the define precedes every
                      `#ifndef` default of both files. (Until session 36 it went in front of
                      attn_bwd_sm90.cu, after bwd_sm90.cuh's defaults: a switch defaulted there,
                      such as BWD_MASK_BRANCH, kept its default and the variant was the base.)
  util:NAME=VALUE     `#define` in front of kernels/util.cu (the elementwise passes, the
                      backward's D pre-pass `dcp_bwd_dd`);
  bin:PATH            the variant's runs use the dcp binary at PATH instead of --dcp (host-side
                      changes, e.g. an older build of the tree against this one; the kernel
                      sources are still --kernels for every variant). At most one per variant.
Every variant, the base included, runs DCP_CUDA_KERNELS = its own full copy of --kernels (default:
this tree's crates/dcp-cuda/kernels) with its defines in front: all variants compile the same
sources, whatever the binary embeds. (Until session 37 a variant's directory held only the files
it defined into and the rest came from the binary, so a switch defaulted in attn_bwd_sm90.cu, or a
tree newer than the binary, compiled the binary's code: such variants measured the base.) A
define whose NAME occurs nowhere in the kernel sources is an error: it would change nothing.
Example (session 34's first call):
    ab_rounds.py --dcp $D --out $R --bench "kernel-bench --head-dim 64 --shapes works1000,packed \\
        --warmup 3 --repeats 10" --check "--batches $R/short.json --head-dim 64 --masks full,causal" \\
        base fd:fwd:FWD_FASTDESC=1 one:DCP_CUDA_FWD_SHORT_ONE=1,fwd:FWD_FASTDESC=1

Round r runs the variants starting from the (r-1)-th (rotating), each as
`dcp BENCH --json DIR/kb_<variant>_<round>.jsonl` under --run-timeout seconds. No round starts after
--deadline-s seconds; --snap TGZ tars DIR (without the kernel directories) after each round, so a
call cut short still returns what ran. --check runs `dcp bench-gpu CHECK --planners local --check
--cpu-check-tokens 100000 --warmup 0 --repeats 1` once per variant before the rounds
(DIR/chk_<variant>.jsonl). The last lines printed are one table per --field (default
fwd_tflops_per_gpu), also written to DIR/table.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (ab_table.py beside this file)
import ab_table  # noqa: E402

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "dcp-cuda", "kernels")
FILES = {"fwd": "attn_fwd_sm90.cu", "fwd-short": "attn_fwd_sm90.cu", "fwd-long": "attn_fwd_sm90.cu",
         "bwd": "bwd_sm90.cuh", "util": "util.cu"}
GUARD = {"fwd-short": "#ifdef FWD_LATEREL", "fwd-long": "#ifndef FWD_LATEREL"}


class Variant:
    def __init__(self, text):
        self.name, _, spec = text.partition(":")
        if not self.name or not all(c.isalnum() or c in "-._" for c in self.name):
            raise ValueError(f"variant {text!r}: the name must be letters, digits, '-', '_' or '.'")
        self.env, self.defines, self.bin = {}, {}, None
        for s in filter(None, spec.split(",")):
            where, _, d = s.partition(":")
            if where == "bin":
                if not d or self.bin is not None:
                    raise ValueError(f"variant {self.name}: {s!r}: bin:PATH names one binary, once")
                self.bin = d
                continue
            if d and where in FILES:
                k, eq, v = d.partition("=")
                if not eq or not k:
                    raise ValueError(f"variant {self.name}: {s!r} is not {where}:NAME=VALUE")
                self.defines.setdefault(where, []).append((k, v))
                continue
            k, eq, v = s.partition("=")
            if eq and (k.startswith("DCP_") or k.startswith("CUDA_")):
                self.env[k] = v
                continue
            raise ValueError(f"variant {self.name}: {s!r} is neither ENV=VALUE (DCP_* / CUDA_*), "
                             f"bin:PATH nor one of {', '.join(FILES)} followed by :NAME=VALUE")

    def kernel_dir(self, root, kernels):
        """The variant's DCP_CUDA_KERNELS directory: every file of `kernels`, the defines in front
        of theirs. ValueError where a define's name occurs in none of the sources."""
        sources = {f: open(os.path.join(kernels, f)).read() for f in sorted(os.listdir(kernels))
                   if os.path.isfile(os.path.join(kernels, f))}
        everything = "\n".join(sources.values())
        for where, defs in self.defines.items():
            for k, _ in defs:
                if not re.search(rf"\b{re.escape(k)}\b", everything):
                    raise ValueError(f"variant {self.name}: {k} occurs in no kernel source under {kernels}: "
                                     f"the define would change nothing")
        d = os.path.join(root, "k", self.name)
        os.makedirs(d, exist_ok=True)
        texts = {}
        for where, defs in self.defines.items():
            lines = [f"#define {k} {v}" for k, v in defs]
            if where in GUARD:
                lines = [GUARD[where], *lines, "#endif"]
            texts.setdefault(FILES[where], []).extend(lines)
        for f, text in sources.items():
            with open(os.path.join(d, f), "w") as out:
                out.write("".join(line + "\n" for line in texts.get(f, [])) + text)
        return d

    def environ(self, kdir):
        """The runs' environment: os.environ, the variant's variables, DCP_CUDA_KERNELS=kdir (its
        kernel_dir, built once before the first run)."""
        e = dict(os.environ)
        e.update(self.env)
        e["DCP_CUDA_KERNELS"] = kdir
        return e


def rotation(n, r):
    """Variant indices of round r (from 1): starting at r - 1, wrapping."""
    return [(i + r - 1) % n for i in range(n)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dcp", required=True, help="the dcp binary")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--bench", required=True, help='timing arguments, e.g. "kernel-bench --shapes packed"')
    ap.add_argument("--check", help="bench-gpu arguments of each variant's CPU f64 check (a batch file, masks)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deadline-s", type=float, default=400, help="no round starts after this many seconds")
    ap.add_argument("--run-timeout", type=float, default=90, help="seconds for one dcp run")
    ap.add_argument("--field", action="append", help="record fields tabled (default fwd_tflops_per_gpu)")
    ap.add_argument("--snap", help="tar.gz of DIR written after the checks and each round")
    ap.add_argument("--kernels", default=KERNELS, help="kernel sources the variants' files start from")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args(argv)
    try:
        vs = [Variant(t) for t in a.variants]
    except ValueError as e:
        ap.error(str(e))
    if len({v.name for v in vs}) != len(vs):
        ap.error("variant names repeat")
    for v in vs:
        if v.bin is not None and not os.access(v.bin, os.X_OK):
            ap.error(f"variant {v.name}: bin:{v.bin} is not an executable file")
    os.makedirs(a.out, exist_ok=True)
    t0 = time.monotonic()
    log = open(os.path.join(a.out, "ab_rounds.log"), "a")

    def say(msg):
        line = f"{msg} t={time.monotonic() - t0:.0f}s"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    def snap():
        if a.snap:
            # (Not the variants' kernel directories: copies of the sources.)
            with tarfile.open(a.snap, "w:gz") as tf:
                tf.add(a.out, arcname=os.path.basename(a.out.rstrip("/")),
                       filter=lambda ti: None if ti.name.split("/")[1:2] == ["k"] else ti)

    def run(v, args, json_path, log_path):
        cmd = [v.bin or a.dcp, *args.split(), "--json", json_path]
        with open(log_path, "w") as lf:
            try:
                rc = subprocess.run(cmd, env=v.environ(kdirs[v.name]), stdout=lf, stderr=subprocess.STDOUT,
                                    timeout=a.run_timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        return rc

    kdirs = {}
    for v in vs:
        try:
            kdirs[v.name] = v.kernel_dir(a.out, a.kernels)
        except ValueError as e:
            ap.error(str(e))
    say("variants: " + "; ".join(f"{v.name} env={v.env} defines={v.defines} bin={v.bin or a.dcp}" for v in vs)
        + f"; kernel sources: {os.path.abspath(a.kernels)}")
    if a.check:
        for v in vs:
            p = os.path.join(a.out, f"chk_{v.name}.jsonl")
            rc = run(v, f"bench-gpu {a.check} --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1",
                     p, os.path.join(a.out, f"chk_{v.name}.log"))
            rows = [json.loads(x) for x in open(p)] if os.path.exists(p) else []
            ok = sum(1 for x in rows if (x.get("check") or {}).get("pass"))
            say(f"check {v.name}: rc={rc} {ok}/{len(rows)} pass")
        snap()
    for r in range(1, a.rounds + 1):
        if time.monotonic() - t0 > a.deadline_s:
            say(f"deadline: round {r} not started")
            break
        for i in rotation(len(vs), r):
            v = vs[i]
            rc = run(v, a.bench, os.path.join(a.out, f"kb_{v.name}_{r}.jsonl"),
                     os.path.join(a.out, f"kb_{v.name}_{r}.log"))
            say(f"bench {v.name} round {r}: rc={rc}")
        snap()
    names = [v.name for v in vs]
    md = []
    for f in a.field or ["fwd_tflops_per_gpu"]:
        md += [f"{f} (÷ {names[0]})", *ab_table.table(ab_table.collect(a.out, f), names), ""]
    with open(os.path.join(a.out, "table.md"), "w") as out:
        out.write("\n".join(md))
    snap()
    print("\n".join(md))


if __name__ == "__main__":
    main()
