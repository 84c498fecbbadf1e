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
DST is meant for `glamm train --init DST`.
"""
import argparse
import json
import math
import os
import shutil
import struct

import torch

KEY = "vision_model.embeddings.position_embedding.weight"
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        tensors[name] = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return header, tensors


def write_safetensors(path, header, tensors):
    # Same names, order, dtypes and offsets as the source (the shapes do not change).
    blobs = []
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                             key=lambda kv: kv[1]["data_offsets"][0]):
        blobs.append(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def position_code(grid, channels):
    """[grid*grid, channels]: rows (y) in the first half of the channels, columns (x) in the second."""
    quarter = channels // 4
    freq = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    pos = torch.arange(grid, dtype=torch.float64)
    one = torch.outer(pos, freq)  # [grid, quarter]
    axis = torch.cat([one.sin(), one.cos()], dim=1)  # [grid, channels/2]
    y = axis[:, None, :].expand(grid, grid, channels // 2)
    x = axis[None, :, :].expand(grid, grid, channels // 2)
    return torch.cat([y, x], dim=2).reshape(grid * grid, channels)


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
    header, tensors = read_safetensors(path)
    table = tensors[KEY]
    rows, channels = table.shape
    grid = math.isqrt(rows - 1)
    if grid * grid != rows - 1 or channels % 4:
        raise SystemExit(f"{KEY} is {list(table.shape)}: not 1 + g*g rows of a multiple of 4 channels")
    code = position_code(grid, channels)
    code *= args.rms / code.pow(2).mean().sqrt()
    before = table[1:].double()
    table[1:] = (before + code).to(table.dtype)
    write_safetensors(path, header, tensors)
    varying = (before - before.mean(0)).pow(2).mean().sqrt().item()
    print(f"{KEY}: grid {grid}x{grid}, {channels} channels; varying part RMS {varying:.3f} before, "
          f"code RMS {args.rms}; written to {path}")


if __name__ == "__main__":
    main()
