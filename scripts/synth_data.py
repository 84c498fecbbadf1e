"""Reading `glamm synth` folders from the scripts beside the engine: the generator's words and its
masks (COCO compressed RLE). numpy only.

COLOURS, SHAPES: in the generator's order (engine/train/scene_render.cpp named_colours,
shape_name), which is also the order of the trainer's class indices (1 + index; 0 background).
decode(segmentation) -> bool array [H, W].
"""
import numpy as np

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black", "pink",
           "brown", "grey", "cyan"]
SHAPES = ["circle", "square", "rectangle", "triangle", "star", "ring", "hexagon", "cross"]


def rle_counts(text):
    """The run lengths of a COCO compressed RLE string (LEB128-like, deltas from two back)."""
    counts, pos = [], 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            c = ord(text[pos]) - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and (c & 0x10):
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def decode(segmentation):
    """A COCO RLE dict -> bool array [H, W] (runs go down the columns)."""
    height, width = segmentation["size"]
    flat = np.zeros(height * width, dtype=bool)
    pos, on = 0, False
    for run in rle_counts(segmentation["counts"]):
        flat[pos:pos + run] = on
        pos += run
        on = not on
    return flat.reshape(width, height).T
