#!/usr/bin/env python3
"""Whether a GLaMM-Shapes model's region captions read the box: teacher-forced probes.

    scripts/probe-bbox.py MODEL_DIR SCENES [--scenes 40] [--glamm build/bin/glamm]

MODEL_DIR is a release folder (glamm/ as `glamm dump --model` takes it, with its vision tower
where its config.json says); SCENES a `glamm synth` folder. For the first N scenes with at least
two objects, the region caption of the first object ("a large striped red star") is
teacher-forced through `glamm dump --answer` after the eval's region question, once with the
object's own box and once with the second object's box. Prints

- the caption's cross-entropy per token under its own box and under the other box: equal when
  the answer ignores the <bbox> embedding;
- under its own box, how often the right colour word and the right shape word win at their
  place: the logit of the word's first token against those of the other colours (12) or shapes
  (8) of the world, given the words before it (chance 1/12 and 1/8);
- the same under the other box, where a model that reads the box names the other object's.

Needs python3-numpy (scripts/safetensors_io.py reads the dumps) and the `glamm` binary.
A diagnostic (model card, "What limits it"), not part of the suite.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import synth_data  # noqa: E402

# The eval's region question (engine/text/conversation.h kRegionCaptionInstruction).
QUESTION = ("Can you provide me with a detailed description of the region in the picture "
            "marked by <bbox>?")


class Glamm:
    def __init__(self, binary, model):
        self.binary, self.model = binary, model
        self.word_ids = {}

    def tokens(self, text):
        """Ids of `text` as an answer word (no BOS; sentencepiece's dummy prefix as in a
        caption, whose words are split at spaces)."""
        if text not in self.word_ids:
            out = subprocess.run([self.binary, "tokenize", "--model", self.model, "--no-bos", text],
                                 check=True, capture_output=True, text=True).stdout
            self.word_ids[text] = [int(t) for t in out.split()]
        return self.word_ids[text]

    def answer_logits(self, image, box, answer, scratch):
        """[k, V] logits: row i predicts answer token i (teacher-forced)."""
        out = os.path.join(scratch, "dump.safetensors")
        subprocess.run([self.binary, "dump", "--model", self.model, "--image", image,
                        "--instruction", QUESTION, "--answer", answer,
                        "--box", ",".join(str(v) for v in box), "--gen-steps", "1", "--out", out],
                       check=True, capture_output=True)
        _, t = safetensors_io.read(out)
        answer_ids = t["input_ids"][len(t["prompt_ids"]):]
        tail = t["logits_tail"][0].astype(np.float64)  # the last positions of prompt + answer
        k = len(answer_ids)
        if k + 1 > tail.shape[0]:
            sys.exit(f"answer of {k} tokens longer than the dump's logits tail {tail.shape[0]}")
        return answer_ids, tail[-(k + 1):-1]


def word_starts(glamm, caption):
    """Index in the caption's ids of each word's first token."""
    starts, at = [], 0
    for word in caption.split():
        starts.append(at)
        at += len(glamm.tokens(word))
    if glamm.tokens(caption) != [i for w in caption.split() for i in glamm.tokens(w)]:
        sys.exit(f"'{caption}' does not tokenise word by word")
    return starts


def wins(logits_row, right, words, glamm):
    """Whether `right`'s first token has the highest logit among the first tokens of `words`."""
    first = {w: glamm.tokens(w)[0] for w in words}
    return max(words, key=lambda w: logits_row[first[w]]) == right


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("scenes")
    parser.add_argument("--scenes", dest="count", type=int, default=40)
    parser.add_argument("--glamm", default="build/bin/glamm")
    args = parser.parse_args()
    glamm = Glamm(args.glamm, args.model)
    with open(os.path.join(args.scenes, "annotations.json")) as f:
        scenes = json.load(f)["scenes"]

    ce = {"own": [], "other": []}
    hits = {(box, attr): 0 for box in ("own", "other") for attr in ("colour", "shape")}
    n = 0
    with tempfile.TemporaryDirectory() as scratch:
        for scene in scenes:
            objects = scene["objects"]
            if len(objects) < 2:
                continue
            first, second = objects[0], objects[1]
            caption = next(r["caption"] for r in scene["regions"] if r["object_id"] == first["id"])
            words = caption.split()
            starts = word_starts(glamm, caption)
            image = os.path.join(args.scenes, scene["file_name"])
            for box, obj in (("own", first), ("other", second)):
                ids, logits = glamm.answer_logits(image, obj["bbox"], caption, scratch)
                peak = logits.max(1, keepdims=True)
                logp = logits - peak - np.log(np.exp(logits - peak).sum(1, keepdims=True))
                ce[box].append(-np.mean(logp[np.arange(len(ids)), ids]))
                for attr, vocabulary in (("colour", synth_data.COLOURS),
                                         ("shape", synth_data.SHAPES)):
                    at = words.index(first[attr])
                    # Under the other box the right word is the other object's.
                    right = obj[attr]
                    hits[(box, attr)] += wins(logits[starts[at]], right, vocabulary, glamm)
            n += 1
            if n >= args.count:
                break
    print(f"{args.model}: {n} scenes (first object's region caption, teacher-forced)")
    print(f"  caption CE per token: own box {np.mean(ce['own']):.3f}, "
          f"other object's box {np.mean(ce['other']):.3f}")
    for box in ("own", "other"):
        print(f"  {box} box: the boxed object's colour wins {hits[(box, 'colour')] / n:.1%}, "
              f"its shape {hits[(box, 'shape')] / n:.1%} "
              f"(chance {1 / len(synth_data.COLOURS):.1%}, {1 / len(synth_data.SHAPES):.1%})")


if __name__ == "__main__":
    main()
