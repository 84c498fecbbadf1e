#!/usr/bin/env bash
# Evaluates a GLaMM-Shapes model on scenes the training never saw (the issue 7 criteria):
# GCG (AP50, mIoU, recall, CIDEr), referring segmentation (cIoU) and region captions (colour and
# shape named). Usage: scripts/eval-shapes.sh [MODEL_DIR] [OUT_DIR]
# Defaults: the bundled model, runs/eval-shapes. The numbers go to OUT_DIR/summary.json.
# EVAL_ARGS adds model options to every `glamm eval` (e.g. EVAL_ARGS="--quantize int8").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
glamm=${GLAMM:-$root/build/bin/glamm}
model=${1:-$root/resources/models/glamm-shapes/glamm}
out=${2:-$root/runs/eval-shapes}
# Held-out scenes: the training data seed is 1000 (resources/train/glamm-shapes.json); the
# sizes are the recipe's.
seed=${SEED:-777001}
count=${COUNT:-100}
limit=${LIMIT:-300}
read -r -a extra <<< "${EVAL_ARGS:-}"
mkdir -p "$out"
if [ ! -f "$out/val/manifest.json" ]; then
  "$glamm" synth --seed "$seed" --count "$count" --min-size 224 --max-size 320 --out "$out/val" --quiet
fi
"$glamm" eval gcg    --model "$model" "${extra[@]}" --data "$out/val"             --out "$out/gcg"    --json > "$out/gcg.json"
"$glamm" eval refseg --model "$model" "${extra[@]}" --data "$out/val/refseg.json" --out "$out/refseg" --json --limit "$limit" > "$out/refseg.json"
"$glamm" eval regcap --model "$model" "${extra[@]}" --data "$out/val/regcap.json" --out "$out/regcap" --json --limit "$limit" > "$out/regcap.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
g, r, c = (json.load(open(f"{out}/{t}.json")) for t in ("gcg", "refseg", "regcap"))
summary = {
    "gcg": {k: g[k] for k in ("images", "AP50", "mIoU", "recall", "text_similarity", "CIDEr", "BLEU4", "ROUGE_L")},
    "refseg": {k: r[k] for k in ("pairs", "cIoU", "gIoU") if k in r},
    "regcap": {k: c[k] for k in ("colour_shape_accuracy", "colour_accuracy", "shape_accuracy", "colour_shape_regions", "CIDEr", "BLEU4") if k in c},
}
summary["gcg"]["CIDEr_x100"] = round(100 * g["CIDEr"], 1)
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
# Where it fails (scenes answered whole, refseg by objects in the scene); needs python3-numpy.
python=${PYTHON:-python3}
if "$python" -c "import numpy" 2>/dev/null; then
  "$python" "$root/scripts/shapes-report.py" "$out" --json "$out/report.json"
else
  echo "no numpy for $python: skipped scripts/shapes-report.py (set PYTHON=...)"
fi
