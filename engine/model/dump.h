// `glamm dump`: the engine's value of every tensor the golden reference names
// (tests/data/golden/README.md), for any model folder and input, to compare a port with the
// Python reference stage by stage.
#pragma once

#include "model/glamm_model.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace glamm {

struct DumpRequest {
    std::string instruction; // the user's first-turn text
    std::string answer;      // teacher-forced answer (tokenised without BOS); may be empty
    std::vector<Box> boxes;  // original-image pixels, one per <bbox>
    int64_t gen_steps = 12;  // greedy tokens decoded from the prompt alone
};

// Logits of this many final positions are dumped (golden `logits_tail`).
constexpr int64_t kLogitsTailPositions = 32;

// Wall-clock time of each stage of one dump_stages() call.
struct StageTimings {
    double preprocess_ms = 0, clip_ms = 0, region_ms = 0, prefill_ms = 0, decode_ms = 0,
           sam_encoder_ms = 0, mask_decoder_ms = 0, postprocess_ms = 0, total_ms = 0;
    int64_t prefill_tokens  = 0;   // expanded positions run through the LLM teacher-forced
    int64_t decode_tokens   = 0;   // greedy tokens generated with the KV cache (after its prefill)
    std::string decode_mode = "-"; // how the decode steps ran (eager, static, cuda_graph)
    // Human-readable table, one stage per line (with tokens/s and ms/token).
    std::string table() const;
};

// Runs every stage and returns (name, tensor) pairs, CPU, in the golden dtypes: ids int64,
// sam_resized_image uint8 [h', w', 3], mask_logits float16, masks uint8, everything else float32.
// `timings` (optional) receives the time of each stage.
std::vector<std::pair<std::string, at::Tensor>> dump_stages(const GlammModel& model,
                                                            const Image& image,
                                                            const DumpRequest& request,
                                                            StageTimings* timings = nullptr);

// Writes the pairs as one safetensors file (atomically).
void write_tensors(const std::string& path,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors);

} // namespace glamm
