#!/usr/bin/env python3
"""Compares a `glamm dump` file with a golden case, tensor by tensor, with the suite's rules
(tests/cli/golden_dump.cpp): floats within REL_TOL * max(1, max|ref|), ids equal, masks agreeing
on a share of pixels. Used where the C++ suite cannot run, e.g. on a GPU server
(scripts/gpu-session.sh). Needs numpy only.

usage: compare-dump.py GOLDEN.safetensors OURS.safetensors [--rel-tol 1e-3] [--mask-agree 0.995]
                       [--skip KEY ...]
Prints one line per tensor and exits 1 when any tensor is outside its tolerance.
"""
import argparse
import sys

import numpy as np

import safetensors_io


def load(path):
    return safetensors_io.read(path)[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("golden")
    parser.add_argument("ours")
    parser.add_argument("--rel-tol", type=float, default=1e-3)
    parser.add_argument("--mask-agree", type=float, default=0.995)
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()
    golden, ours = load(args.golden), load(args.ours)
    failed = []
    for key, ref in golden.items():
        if key in args.skip:
            print(f"  {key:28s} skipped")
            continue
        if key not in ours:
            failed.append(key)
            print(f"  {key:28s} MISSING")
            continue
        got = ours[key]
        if got.shape != ref.shape:
            failed.append(key)
            print(f"  {key:28s} shape {got.shape} vs {ref.shape}")
            continue
        if ref.dtype == np.int64:
            ok = np.array_equal(got, ref)
            print(f"  {key:28s} ids {'equal' if ok else 'DIFFER'}")
        elif key == "masks":
            agree = float((got == ref).mean())
            ok = agree >= args.mask_agree
            print(f"  {key:28s} {100 * agree:.4f}% of pixels agree (need {100 * args.mask_agree}%)")
        elif key == "sam_resized_image":
            diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
            ok = diff.max() <= 1
            print(f"  {key:28s} max|diff| {diff.max()}, {100 * float((diff == 0).mean()):.4f}% exact")
        else:
            g, r = got.astype(np.float64), ref.astype(np.float64)
            max_ref = float(np.abs(r).max()) if r.size else 0.0
            max_diff = float(np.abs(g - r).max()) if r.size else 0.0
            tol = args.rel_tol * max(1.0, max_ref)
            ok = max_diff <= tol
            print(f"  {key:28s} max|diff| {max_diff:.3e}  (tolerance {tol:.3e}, max|ref| {max_ref:.3e})")
        if not ok:
            failed.append(key)
    print("FAILED: " + ", ".join(failed) if failed else "all tensors within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
