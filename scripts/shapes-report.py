#!/usr/bin/env python3
"""Where a GLaMM-Shapes model fails, from an eval folder of scripts/eval-shapes.sh.

Usage: scripts/shapes-report.py EVAL_DIR [--json FILE]   (FILE: the report as JSON too)

EVAL_DIR holds val/ (the generated scenes), gcg/ and refseg/ (the predictions of `glamm eval`).
Reports
  - GCG scenes answered whole (issue 7's fixed-scene criterion): every true phrase matched one to
    one by a predicted phrase, word for word, whose mask has IoU >= 0.8 with it; and the same with
    only the colour and shape words compared; and, over the true phrases whose mask some predicted
    phrase's mask finds (IoU >= 0.5, the best one), how often that phrase names the true colour
    and the true shape (what the model sees apart from where it looks); and how many true
    phrases are found by the number of true phrases in the scene (with how many scenes got fewer,
    as many or more phrases than the truth) and by the mask's share of the image;
  - referring segmentation: mean IoU by the number of objects in the scene, and what the misses
    (IoU < 0.5) are: an empty mask, a mask on another phrase's object (IoU >= 0.5 with it), or a
    mask on no object.
Needs python3-numpy (Debian).
"""
import json
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth_data  # noqa: E402

STRICT_IOU = 0.8  # issue 7: masks with IoU >= 0.8 against the generated truth
MISS_IOU = 0.5
# Bins of a true mask's share of the image for the found-by-size count: [0, 1 %), [1 %, 2 %), ...
AREA_BINS = (0.01, 0.02, 0.05)
# The generator's words, as sets.
COLOURS = set(synth_data.COLOURS)
SHAPES = set(synth_data.SHAPES)
decode = synth_data.decode


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def attribute_words(phrase):
    words = phrase.split()
    singular = [w[:-2] if w.endswith("es") and w[:-2] in SHAPES else w.rstrip("s") for w in words]
    return tuple(sorted({w for w in words + singular if w in COLOURS or w in SHAPES}))


def area_bin(share):
    """The index of `share`'s bin (0 .. len(AREA_BINS)) and the bin's label."""
    index = sum(share >= b for b in AREA_BINS)
    lower = AREA_BINS[index - 1] if index else 0.0
    return index, (f"{lower:.0%}-{AREA_BINS[index]:.0%}" if index < len(AREA_BINS)
                   else f">={lower:.0%}")


def load(path):
    with open(path) as f:
        return json.load(f)


def gcg_report(folder):
    truth = load(os.path.join(folder, "val", "annotations.json"))
    phrases = defaultdict(list)
    for a in truth["annotations"]:
        if "segmentation" in a:
            phrases[a["image_id"]].append((a["phrase"], decode(a["segmentation"])))
    whole = {"word_for_word": [], "colour_and_shape": []}  # scene ids
    named = {"phrases": 0, "found": 0, "colour_right": 0, "shape_right": 0}
    by_count = defaultdict(lambda: {"phrases": 0, "found": 0, "scenes_with_fewer": 0,
                                    "scenes_with_as_many": 0, "scenes_with_more": 0})  # by len(want)
    by_area = defaultdict(lambda: {"phrases": 0, "found": 0})  # by area_bin()
    for image in truth["images"]:
        pred = load(os.path.join(folder, "gcg", "predictions", image["id"] + ".json"))
        got = list(zip(pred["phrases"], (decode(m) for m in pred["pred_masks"])))
        want = phrases[image["id"]]
        count = by_count[len(want)]
        count["scenes_with_" + ("fewer" if len(got) < len(want) else
                                "as_many" if len(got) == len(want) else "more")] += 1
        for phrase, mask in want:
            named["phrases"] += 1
            size = by_area[area_bin(mask.sum() / mask.size)]
            count["phrases"] += 1
            size["phrases"] += 1
            best = max(((iou(mask, m), p) for p, m in got), default=(0.0, ""))
            if best[0] < MISS_IOU:
                continue
            named["found"] += 1
            count["found"] += 1
            size["found"] += 1
            true_words, said = set(attribute_words(phrase)), set(attribute_words(best[1]))
            named["colour_right"] += true_words & COLOURS == said & COLOURS
            named["shape_right"] += true_words & SHAPES == said & SHAPES
        for mode, same in (("word_for_word", lambda p, q: p.strip() == q.strip()),
                           ("colour_and_shape",
                            lambda p, q: attribute_words(p) == attribute_words(q))):
            if len(got) != len(want):
                continue
            used, ok, worst = set(), True, 1.0
            for phrase, mask in got:
                best = max(((iou(mask, m), j) for j, (p, m) in enumerate(want)
                            if j not in used and same(phrase, p)), default=(0.0, -1))
                if best[0] < STRICT_IOU:
                    ok = False
                    break
                used.add(best[1])
                worst = min(worst, best[0])
            if ok:
                whole[mode].append({"image": image["id"], "lowest_iou": round(worst, 3)})
    return {"scenes": len(truth["images"]), "answered_whole": whole, "attributes_named": named,
            "found_by_phrases": {str(n): c for n, c in sorted(by_count.items())},
            "found_by_mask_share": {label: c for (_, label), c in sorted(by_area.items())}}


def refseg_report(folder):
    truth = load(os.path.join(folder, "val", "refseg.json"))
    objects = defaultdict(int)
    for r in load(os.path.join(folder, "val", "regcap.json"))["annotations"]:
        objects[r["image_id"].rsplit("_obj", 1)[0]] += 1  # one region per object
    phrase_masks = defaultdict(list)
    for a in load(os.path.join(folder, "val", "annotations.json"))["annotations"]:
        if "segmentation" in a:
            phrase_masks[a["image_id"]].append(decode(a["segmentation"]))
    predictions = {}
    pred_dir = os.path.join(folder, "refseg", "predictions")
    for name in os.listdir(pred_dir):
        for p in load(os.path.join(pred_dir, name)):
            predictions[p["id"]] = decode(p["segmentation"])
    by_count, misses = defaultdict(list), defaultdict(int)
    for a in truth["annotations"]:
        if a["id"] not in predictions:
            continue  # beyond the eval's --limit
        mask, want = predictions[a["id"]], decode(a["segmentation"])
        value = iou(mask, want)
        by_count[objects[a["image_id"]]].append(value)
        if value >= MISS_IOU:
            continue
        if mask.sum() == 0:
            misses["empty"] += 1
        elif max((iou(mask, m) for m in phrase_masks[a["image_id"]]), default=0) >= MISS_IOU:
            misses["another object"] += 1
        else:
            misses["no object"] += 1
    values = [v for vs in by_count.values() for v in vs]
    return {
        "expressions": len(values),
        "mean_iou": float(np.mean(values)) if values else 0.0,
        "mean_iou_by_objects": {str(n): {"expressions": len(vs), "mean_iou": float(np.mean(vs))}
                                for n, vs in sorted(by_count.items())},
        "misses": dict(misses),
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    report = {"gcg": gcg_report(folder), "refseg": refseg_report(folder)}
    if sys.argv[2:3] == ["--json"] and len(sys.argv) > 3:
        with open(sys.argv[3], "w") as f:
            json.dump(report, f, indent=2)
    g, r = report["gcg"], report["refseg"]
    print(f"GCG: {g['scenes']} scenes; answered whole (IoU >= {STRICT_IOU}): "
          f"{len(g['answered_whole']['word_for_word'])} word for word, "
          f"{len(g['answered_whole']['colour_and_shape'])} with colour and shape right")
    for s in g["answered_whole"]["word_for_word"]:
        print(f"  word for word: {s['image']} (lowest mask IoU {s['lowest_iou']})")
    a = g["attributes_named"]
    print(f"  true phrases whose mask is found (IoU >= {MISS_IOU}): {a['found']} of {a['phrases']}; "
          f"their phrase names the colour in {a['colour_right']}, the shape in {a['shape_right']}")
    for n, c in g["found_by_phrases"].items():
        print(f"  scenes of {n} true phrase(s): {c['found']:4d} of {c['phrases']:4d} found; answers with "
              f"fewer / as many / more phrases: {c['scenes_with_fewer']} / "
              f"{c['scenes_with_as_many']} / {c['scenes_with_more']}")
    for share, c in g["found_by_mask_share"].items():
        print(f"  masks covering {share} of the image: {c['found']:4d} of {c['phrases']:4d} found")
    print(f"refseg: {r['expressions']} expressions, mean IoU {r['mean_iou']:.3f}")
    for n, s in r["mean_iou_by_objects"].items():
        print(f"  {n} object(s): {s['expressions']:4d} expressions, mean IoU {s['mean_iou']:.3f}")
    print("  misses (IoU < 0.5): " + ", ".join(f"{k} {v}" for k, v in sorted(r["misses"].items())))


if __name__ == "__main__":
    main()
