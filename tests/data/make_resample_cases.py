#!/usr/bin/python3
"""Writes the resampler fixtures under tests/data/resample/: small synthetic RGB images and what
Pillow's Image.resize makes of them (BILINEAR and BICUBIC, full-image box), as lossless PNGs, plus
cases.txt listing `input width height filter expected` per line.

Run with the Debian Pillow (python3-pil, 9.4.0 on bookworm; the resampler has not changed since):
    /usr/bin/python3 tests/data/make_resample_cases.py
tests/engine/vision/test_resample.cpp requires the C++ port to match every byte.
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "resample")


def noise(rng, w, h):
    """Uniform noise: every pixel different, the hardest case for rounding."""
    return rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)


def structured(rng, w, h):
    """A photo-like image that still compresses: gradients, hard-edged blocks (which make bicubic
    overshoot below 0 and above 255, exercising the clip), saturated stripes and a noisy patch."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), dtype=np.float64)
    img[..., 0] = 255.0 * x / max(w - 1, 1)
    img[..., 1] = 255.0 * y / max(h - 1, 1)
    img[..., 2] = 127.5 + 127.5 * np.sin(x / 17.0) * np.cos(y / 23.0)
    for _ in range(12):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        bw, bh = rng.randint(5, max(6, w // 4)), rng.randint(5, max(6, h // 4))
        img[y0:y0 + bh, x0:x0 + bw] = rng.choice([0, 255], size=3)
    img[:, (x[0] // 3) % 7 == 0] = [255, 0, 255]
    py, px = rng.randint(0, max(1, h - 48)), rng.randint(0, max(1, w - 48))
    img[py:py + 48, px:px + 48] = rng.randint(0, 256, size=img[py:py + 48, px:px + 48].shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}

# (input name, generator, input w, input h, [(out w, out h, filter), ...])
CASES = [
    # CLIP-like upscale of a tiny image: shortest side 23 -> 336, long side int(336 * 37 / 23).
    ("noise_37x23", noise, 37, 23,
     [(540, 336, "bicubic"), (540, 336, "bilinear"), (29, 17, "bicubic"), (37, 23, "bicubic")]),
    # Odd-size down and up scaling on noise, both filters; one axis unchanged (that pass skipped).
    ("noise_61x47", noise, 61, 47,
     [(29, 17, "bicubic"), (29, 17, "bilinear"), (61, 100, "bicubic"), (23, 47, "bilinear"),
      (7, 3, "bicubic"), (1, 1, "bilinear"), (131, 97, "bilinear"), (64, 45, "bicubic")]),
    # Extreme aspect ratios and a 1-pixel axis.
    ("noise_500x9", noise, 500, 9, [(7, 3, "bicubic"), (13, 40, "bilinear")]),
    ("noise_1x5", noise, 1, 5, [(3, 7, "bicubic"), (4, 2, "bilinear")]),
    # The golden's region-case geometry (900x1100 -> SAM 838x1024 bilinear, CLIP 336x410 bicubic),
    # on a synthetic image with hard edges.
    ("struct_900x1100", structured, 900, 1100,
     [(838, 1024, "bilinear"), (336, 410, "bicubic")]),
    # A portrait image upscaled by SAM's longest side (1024) and CLIP's shortest side.
    ("struct_150x260", structured, 150, 260, [(591, 1024, "bilinear"), (336, 582, "bicubic")]),
]


def main():
    import PIL
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(20240601)
    lines = ["# input width height filter expected  (Pillow %s)" % PIL.__version__]
    for name, gen, w, h, outs in CASES:
        src = Image.fromarray(gen(rng, w, h), "RGB")
        src_file = name + ".png"
        src.save(os.path.join(OUT, src_file), optimize=True)
        for ow, oh, filt in outs:
            out = src.resize((ow, oh), FILTERS[filt])
            out_file = "%s_to_%dx%d_%s.png" % (name, ow, oh, filt)
            out.save(os.path.join(OUT, out_file), optimize=True)
            lines.append("%s %d %d %s %s" % (src_file, ow, oh, filt, out_file))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print("wrote %d cases, %d bytes, under %s" % (len(lines) - 1, total, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
