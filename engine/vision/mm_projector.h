// LLaVA's mm_projector: CLIP features -> LLaMA embedding width ("mlp2x_gelu" in GLaMM).
// Legend: B batch, N image tokens, M mm_hidden_size (CLIP width), H LLaMA hidden size.
#pragma once

#include "core/config.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

namespace glamm {

// Checkpoint key prefix of the projector.
inline constexpr char kMmProjectorPrefix[] = "model.mm_projector.";

// mm_projector_type "linear": one Linear(M, H) registered as the projector itself (keys
// `weight`, `bias`); "mlp<k>x_gelu": k Linears, Linear(M, H) then (exact-erf GELU, Linear(H, H))
// × (k-1), registered as nn.Sequential indices 0, 2, 4, ... (GELUs at the odd indices have no
// weights). Keys under "model.mm_projector.".
struct MmProjectorImpl : torch::nn::Module {
    // Throws Error for another projector type or non-positive widths.
    MmProjectorImpl(const std::string& projector_type, int64_t mm_hidden_size, int64_t hidden_size);
    // From GlammConfig: mm_projector_type, mm_hidden_size, llama.hidden_size.
    explicit MmProjectorImpl(const GlammConfig& config);

    // [B, N, M] (any float dtype; cast to the module's) -> [B, N, H] in the module's dtype.
    at::Tensor forward(const at::Tensor& image_features);

    at::Tensor weight, bias;                // "linear" only
    std::vector<torch::nn::Linear> linears; // "mlp<k>x_gelu": Sequential children 0, 2, 4, ...
};
TORCH_MODULE(MmProjector);

} // namespace glamm
