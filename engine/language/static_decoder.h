// Decoding steps with fixed shapes over a KV cache of fixed capacity, so that one step can be
// recorded as a CUDA graph and replayed for every token: at batch 1 a 7B decoder step is ~1,300
// small kernels, and launching them one by one from the host costs more than the GPU needs to
// run them. The position lives in a device tensor; keys/values are written with index_copy_ and
// attention runs over the whole capacity with the positions after the current one masked. Without
// a graph (CPU, or GLAMM_NO_CUDA_GRAPH=1) the same fixed-shape step runs eagerly; the CPU tests
// prove it equal to the growing-cache path of LlamaForCausalLM::forward.
// Legend: H hidden size, N cache capacity, D head dim.
#pragma once

#include "core/cuda_graph.h"
#include "language/kv_cache.h"
#include "language/llama.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace glamm {

class StaticDecoder {
public:
    // `cache` must already hold the prompt (so its buffers exist in the model's dtype and device)
    // and have the capacity for every step to come; neither it nor `llama` may be reallocated
    // while the decoder lives. `use_graph`: record the step as a CUDA graph (CUDA only).
    StaticDecoder(LlamaForCausalLM llama, KVCache& cache, bool use_graph);

    // embeds [1, 1, H] of the token at position cache.length() -> its final-norm hidden state
    // [H] (a fresh tensor, model dtype). The position is committed to the cache. The first call
    // with a graph runs the step eagerly and records it; later calls replay the recording.
    at::Tensor step(const at::Tensor& embeds);

    bool uses_graph() const { return use_graph_; }

private:
    void run(); // the recorded work: static inputs -> static output

    LlamaForCausalLM llama_;
    KVCache& cache_;
    bool use_graph_;
    RotaryTables tables_; // [N, D] in the model dtype, on the device
    at::Tensor embeds_;   // [1, 1, H] input
    at::Tensor position_; // [1] int64 input
    at::Tensor hidden_;   // [1, 1, H] output
    CudaGraph graph_;
};

} // namespace glamm
