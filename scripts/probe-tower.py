#!/usr/bin/env python3
"""How well a GLaMM-Shapes vision tower tells objects' shapes and colours apart: a linear probe.

    scripts/probe-tower.py CLIP_DIR TRAIN_SCENES VAL_SCENES [--steps 150] [--lr 3e-3]

CLIP_DIR is a tower folder (config.json + model.safetensors, f32 or f16: a run's clip/, a
release's, a checkpoint's with its run's config.json); TRAIN_SCENES and VAL_SCENES are `glamm synth` folders. Each scene is shown to the
tower as the engine does (short side resized to image_size with Pillow's bicubic, centre crop,
CLIP's mean and std); each object's feature is the tower's selected layer (mm_vision_select_layer
-2, patches) averaged over the patches its visible mask covers, weighted by coverage (the
trainer's object loss pools the same way, train::object_views). A linear head is trained on the
frozen features of TRAIN_SCENES' objects and scored on VAL_SCENES'. Prints the held-out shape and
colour accuracy (chance: 1/8 and 1/12 of a balanced set).

Needs python3-torch, python3-numpy and python3-pil (scripts/safetensors_io.py reads the weights,
scripts/synth_data.py the masks).
A diagnostic (model card, "What limits it"), not part of the suite.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import synth_data  # noqa: E402

SHAPES, COLOURS = synth_data.SHAPES, synth_data.COLOURS
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
SELECT_LAYER = -2  # GLaMM's mm_vision_select_layer


def load_scenes(folder, side, patch):
    """Tower inputs [N, side, side, 3] uint8 and objects (scene, coverage [G*G], shape, colour)."""
    annotations = json.load(open(os.path.join(folder, "annotations.json")))
    grid = side // patch
    images, objects = [], []
    for index, scene in enumerate(annotations["scenes"]):
        image = Image.open(os.path.join(folder, scene["file_name"])).convert("RGB")
        w, h = image.size
        scale = side / min(w, h)
        rw, rh = max(side, round(w * scale)), max(side, round(h * scale))
        left, top = (rw - side) // 2, (rh - side) // 2
        crop = (left, top, left + side, top + side)
        images.append(np.asarray(image.resize((rw, rh), Image.BICUBIC).crop(crop), np.uint8))
        for o in scene["objects"]:
            mask = Image.fromarray(synth_data.decode(o["segmentation"]).astype(np.uint8) * 255)
            mask = np.asarray(mask.resize((rw, rh), Image.NEAREST).crop(crop), np.float32) / 255
            coverage = mask.reshape(grid, patch, grid, patch).mean(axis=(1, 3)).reshape(-1)
            if coverage.sum() > 0:
                objects.append((index, coverage, SHAPES.index(o["shape"]),
                                COLOURS.index(o["colour"])))
    return np.stack(images), objects


class Tower:
    """HF's CLIPVisionTransformer up to the selected hidden state (pre-LN, quick GELU)."""

    def __init__(self, folder):
        config = os.path.join(folder, "config.json")
        if not os.path.exists(config):  # a checkpoint's clip/: its run's (RUN/checkpoints/step-N)
            config = os.path.join(folder, "..", "..", "..", "clip", "config.json")
        self.config = json.load(open(config))
        _, arrays = safetensors_io.read(os.path.join(folder, "model.safetensors"))
        self.w = {k[len("vision_model."):]: torch.from_numpy(v.astype(np.float32))
                  for k, v in arrays.items()}

    def features(self, pixels):  # [B, 3, S, S] -> [B, P, D]
        c, w = self.config, self.w
        eps, heads = c["layer_norm_eps"], c["num_attention_heads"]
        x = F.conv2d(pixels, w["embeddings.patch_embedding.weight"], stride=c["patch_size"])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([w["embeddings.class_embedding"].expand(x.shape[0], 1, -1), x], 1)
        x = x + w["embeddings.position_embedding.weight"]
        ln = lambda t, n: F.layer_norm(t, t.shape[-1:], w[n + ".weight"], w[n + ".bias"], eps)
        lin = lambda t, n: F.linear(t, w[n + ".weight"], w[n + ".bias"])
        x = ln(x, "pre_layrnorm")
        layers = c["num_hidden_layers"] + 1 + SELECT_LAYER  # hidden state index
        for i in range(layers):
            p = f"encoder.layers.{i}."
            b, t, d = x.shape
            y = ln(x, p + "layer_norm1")
            q, k, v = (lin(y, p + "self_attn." + n).view(b, t, heads, -1).transpose(1, 2)
                       for n in ("q_proj", "k_proj", "v_proj"))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
            x = x + lin(a.transpose(1, 2).reshape(b, t, d), p + "self_attn.out_proj")
            y = lin(ln(x, p + "layer_norm2"), p + "mlp.fc1")
            x = x + lin(y * torch.sigmoid(1.702 * y), p + "mlp.fc2")
        return x[:, 1:]


def pooled_features(tower, images, objects):
    """[N, D] per object: coverage-weighted mean of its scene's patch features."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for begin in range(0, len(images), 64):
            batch = torch.from_numpy(images[begin:begin + 64]).permute(0, 3, 1, 2).float()
            f = tower.features((batch / 255 - mean) / std)
            for scene, coverage, _, _ in objects:
                if begin <= scene < begin + 64:
                    cov = torch.from_numpy(coverage)
                    out.append((cov @ f[scene - begin]) / cov.sum())
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip_dir")
    ap.add_argument("train_scenes")
    ap.add_argument("val_scenes")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    torch.manual_seed(0)
    tower = Tower(args.clip_dir)
    side, patch = tower.config["image_size"], tower.config["patch_size"]
    data = {}
    for name, folder in (("train", args.train_scenes), ("val", args.val_scenes)):
        images, objects = load_scenes(folder, side, patch)
        labels = torch.tensor([[o[2], o[3]] for o in objects])
        data[name] = (pooled_features(tower, images, objects), labels)
    x, y = data["train"]
    head = torch.nn.Linear(x.shape[1], len(SHAPES) + len(COLOURS))
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.0)
    split = len(SHAPES)
    for _ in range(args.steps):  # full batch
        logits = head(x)
        loss = F.cross_entropy(logits[:, :split], y[:, 0]) + \
            F.cross_entropy(logits[:, split:], y[:, 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = data["val"]
    with torch.no_grad():
        logits = head(x)
    shape = (logits[:, :split].argmax(1) == y[:, 0]).float().mean().item()
    colour = (logits[:, split:].argmax(1) == y[:, 1]).float().mean().item()
    print(f"{args.clip_dir}: {len(data['train'][1])} training objects, {len(y)} held out: "
          f"shape {shape:.3f}, colour {colour:.3f}")


if __name__ == "__main__":
    main()
