#!/usr/bin/env python3
"""Adds a 2-D sine-cosine position code to a GLaMM-Shapes vision tower's position embeddings.

Usage: scripts/add-position-code.py SRC DST [--rms R]

SRC is a training run's checkpoint folder (RUN/checkpoints/step-N: glamm/, clip/, *_head.pt) or a
release (glamm/, clip/); DST receives a copy in which clip/model.safetensors'
vision_model.embeddings.position_embedding.weight [1 + g*g, C] has gained, on its g*g patch rows,
the MAE-style 2-D code (half the channels sin/cos of the row, half of the column, frequencies
1/10000^(k/(C/4))) scaled to an RMS of R (default 0.6). The class token's row is unchanged.

Why: trained from scratch (N(0, 0.02) init, as HF's CLIP), GLaMM-Shapes' tower kept position
embeddings whose varying part has an RMS of 0.09 against 2.2 for the patch projection of real
scenes: the tower is nearly blind to where a patch is, and the model names shapes at chance. Stage
9 started from a copy made by this script and still named shapes at chance (the model card).
DST is meant for `glamm train --init DST`. Needs numpy (scripts/safetensors_io.py).
"""
import argparse
import math
import os
import shutil

import numpy as np

import safetensors_io

KEY = "vision_model.embeddings.position_embedding.weight"


def position_code(grid, channels):
    """[grid*grid, channels]: rows (y) in the first half of the channels, columns (x) in the second."""
    quarter = channels // 4
    freq = 1.0 / (10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter))
    one = np.outer(np.arange(grid, dtype=np.float64), freq)  # [grid, quarter]
    axis = np.concatenate([np.sin(one), np.cos(one)], axis=1)  # [grid, channels/2]
    y = np.broadcast_to(axis[:, None, :], (grid, grid, channels // 2))
    x = np.broadcast_to(axis[None, :, :], (grid, grid, channels // 2))
    return np.concatenate([y, x], axis=2).reshape(grid * grid, channels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--rms", type=float, default=0.6)
    args = parser.parse_args()
    if os.path.exists(args.dst):
        raise SystemExit(f"{args.dst} exists: choose a new folder")
    shutil.copytree(args.src, args.dst, ignore=shutil.ignore_patterns("optimizer.pt"))
    # A checkpoint's tokenizer is its run's: DST carries it, being no checkpoint of a run.
    tokenizer = os.path.join(args.dst, "glamm", "tokenizer.model")
    run_tokenizer = os.path.join(args.src, os.pardir, os.pardir, "glamm", "tokenizer.model")
    if not os.path.exists(tokenizer) and os.path.exists(run_tokenizer):
        shutil.copy(run_tokenizer, tokenizer)
    path = os.path.join(args.dst, "clip", "model.safetensors")
    header, tensors = safetensors_io.read(path)
    table = tensors[KEY]
    rows, channels = table.shape
    grid = math.isqrt(rows - 1)
    if grid * grid != rows - 1 or channels % 4:
        raise SystemExit(f"{KEY} is {list(table.shape)}: not 1 + g*g rows of a multiple of 4 channels")
    code = position_code(grid, channels)
    code *= args.rms / np.sqrt(np.mean(code ** 2))
    before = table[1:].astype(np.float64)
    table[1:] = before + code
    safetensors_io.write(path, header, tensors)
    varying = np.sqrt(np.mean((before - before.mean(0)) ** 2))
    print(f"{KEY}: grid {grid}x{grid}, {channels} channels; varying part RMS {varying:.3f} before, "
          f"code RMS {args.rms}; written to {path}")


if __name__ == "__main__":
    main()
