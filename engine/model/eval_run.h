// `glamm eval gcg|refseg|regcap --model`: runs a model over a benchmark dataset the way the
// official GLaMM eval scripts do (fixed instruction per task, greedy, 512 new tokens, the
// reference's text clean-up), writes one prediction file per image and returns the predictions
// for eval::score_*. docs/evaluation.md describes the protocol and what differs.
#pragma once

#include "eval/benchmark.h"
#include "eval/datasets.h"
#include "session.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace glamm {

// The teacher-forced answer for referring segmentation: one of the reference's ANSWER_LIST
// (dataset/utils/utils.py), fixed here where the reference draws one at random.
inline constexpr const char* kRefsegEvalAnswer = "Sure, it is [SEG].";

struct EvalRunOptions {
    std::string out_dir;           // prediction files go here (created; written atomically)
    GenerationSettings generation; // the reference: greedy, 512 new tokens
    // GCG only: score the masks of the GT grounded caption (teacher-forced) instead of
    // generating; a diagnostic, not the official protocol. Needs gcg_answer in the dataset.
    bool teacher_forced = false;
    // After each sample: samples done, total, the sample's image id, its seconds.
    std::function<void(size_t done, size_t total, const std::string& id, double seconds)> on_sample;
    // Polled between samples, tokens and the layers of the image encoders and the prefill.
    std::function<bool()> should_abort;
};

struct EvalRunResult {
    std::vector<eval::Prediction> predictions;
    std::vector<std::string> files; // prediction files written
    bool cancelled = false;         // stopped by should_abort: predictions are partial
    size_t clamped_boxes = 0;             // regcap: boxes that overran their image, clamped to it
};

// GCG (eval/gcg/infer.py): per image, the eval instruction, greedy generation; writes
// OUT/<image_id>.json = {image_id, caption, phrases, pred_masks: [COCO RLE]}.
EvalRunResult run_gcg_eval(const std::shared_ptr<const Model>& model, const eval::GcgDataset& data,
                           const EvalRunOptions& options);
// Referring segmentation (eval/referring_seg/infer_and_evaluate.py): per expression, the
// instruction "Can you segment the {expression} in this image?" with kRefsegEvalAnswer
// teacher-forced (Session::score), one mask; writes OUT/<image_id>.json = [{id, image,
// sentence, segmentation}] (id = the GT annotation id).
EvalRunResult run_refseg_eval(const std::shared_ptr<const Model>& model,
                              const eval::RefsegDataset& data, const EvalRunOptions& options);
// Region captioning (eval/region_captioning/infer.py): per region, the box and the region
// instruction, greedy generation, cleaned caption; writes OUT/<image_id>.json = {image_id,
// caption}. A box that overruns its image is clamped to it (counted in clamped_boxes); one with
// no area inside it is an error naming the region.
EvalRunResult run_regcap_eval(const std::shared_ptr<const Model>& model,
                              const eval::RegcapDataset& data, const EvalRunOptions& options);

} // namespace glamm
