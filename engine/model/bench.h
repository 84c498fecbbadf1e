// `glamm bench`: per-stage timings of one grounded answer (min/median over repeats after warm-up),
// the machine's own limits measured in the same run (matmul GFLOP/s, copy GB/s) with each stage's
// ratio to its bound, peak memory, the longest a Stop would wait in each stage, and optionally
// GLaMM's own decoding algorithm (no KV cache: the whole sequence recomputed for every token) on
// the same weights for a ratio.
// Legend: S prompt positions (expanded), N generated tokens, H LLaMA width.
#pragma once

#include "model/glamm_model.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace glamm {

// Default n of the n×n×n matmuls that measure the machine (LLaMA-7B's width).
inline constexpr int64_t kBenchMatmulSize = 4096;

struct BenchOptions {
    int64_t tokens        = 100; // generated tokens, forced (EOS ignored)
    int64_t prompt_tokens = 0; // 0: the GCG prompt as is; else padded to about this many positions
    int warmup            = 1;
    int repeat            = 3;
    bool reference        = false;            // also run GLaMM's algorithm (no KV cache)
    int64_t matmul_size   = kBenchMatmulSize; // n of the n×n×n matmuls that measure the machine
    int64_t copy_mib      = 512;              // size of the tensor copied to measure bandwidth
};

// The machine's limits, measured on the model's device.
struct MachineLimits {
    double bf16_gflops = 0, f32_gflops = 0; // n×n×n matmul
    double copy_gbps = 0;                   // bytes read + written per second by a large copy
};

struct StageStat {
    std::string name;       // "preprocess", "clip", "region", "prefill", "decode", ...
    std::vector<double> ms; // one per repeat
    double min_ms = 0, median_ms = 0;
    double bound_ms = 0;    // the machine's lower bound for this stage (0: none computed)
    std::string bound_kind; // "matmul" or "bandwidth"
    // bound_ms / median_ms: 1 = at the machine's limit.
    double efficiency() const { return bound_ms > 0 && median_ms > 0 ? bound_ms / median_ms : 0; }
};

struct BenchResult {
    std::string device, dtype; // dtype ends in "+int8" with an int8 language model
    int threads = 0;
    MachineLimits limits;
    std::vector<StageStat> stages;
    int64_t prompt_positions = 0, decode_tokens = 0;
    double decode_ms_per_token = 0, prefill_tokens_per_s = 0;
    double weight_bytes_decode   = 0; // bytes of weights one decode step reads
    double peak_rss_mib          = 0;
    double peak_gpu_mib          = -1; // tensors, CUDA caching allocator; -1: not measured
    double peak_gpu_reserved_mib = -1; // reserved from the driver (≈ what nvidia-smi shows)
    std::string decode_mode;           // how the decode steps ran (DecodeMode)
    std::string decode_fallback;       // why the automatic choice fell back, if it did
    bool eager_ids_match = false;      // stage "decode_eager" gave the same ids
    // With a "decode_eager" stage: its ms per token, and how many times faster the steps ran.
    double eager_ms_per_token = 0, eager_over_decode = 0;
    std::vector<int64_t> greedy_ids;
    // How long a Stop waits at most in each stage that asks (ShouldAbort): the longest interval
    // between two asks, or from the stage's start to its first ask or its last ask to its end, in
    // the last recorded run. Stages "encode" (CLIP and SAM encoder), "region", "prefill",
    // "decode" (one step). Host time: on a GPU the asks run ahead of the device's work, so the
    // figures mean little there.
    std::vector<std::pair<std::string, double>> stop_wait_ms;
    // --reference: GLaMM's algorithm on the same prompt and weights.
    bool has_reference = false;
    // Grounded caption end to end (preprocess, CLIP, SAM, prefill + N tokens, one mask), median
    // over repeats: with the KV cache, and with GLaMM's algorithm in the generation.
    double reference_ms = 0, cached_ms = 0;
    double reference_speedup = 0; // reference_ms / cached_ms
    std::vector<int64_t> reference_ids;

    const StageStat* stage(const std::string& name) const;
    std::string to_json() const;
    std::string table() const;
};

// Measures the machine's matmul rates (bf16, f32) and copy bandwidth on `device`.
MachineLimits measure_machine(const c10::Device& device, int64_t matmul_size, int64_t copy_mib);

// Runs every stage of a grounded caption on `image` (one box for the region encoder, one mask).
BenchResult run_bench(const GlammModel& model, const Image& image, const BenchOptions& options);

// The vision encoders alone at any size: a CLIP folder and/or a SAM checkpoint folder
// (image_encoder.* keys, as sam_vit_h; SAM ViT-H config). Stages "preprocess", "clip",
// "sam_encoder". Either folder may be empty.
BenchResult run_encoder_bench(const std::string& clip_dir, const std::string& sam_dir,
                              const Image& image, const std::string& device,
                              const std::string& dtype, int threads, const BenchOptions& options);

// FLOPs of the SAM image encoder (linears, convs and attention matmuls) and of CLIP's layers up
// to `layers`, for the matmul-rate bound.
double sam_encoder_flops(const SamConfig& config);
double clip_flops(const ClipVisionConfig& config, int64_t layers);

} // namespace glamm
