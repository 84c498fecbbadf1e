// text_hidden_fcs: [SEG] hidden states -> SAM prompt embeddings.
// Legend: K [SEG] tokens, H LLaMA hidden size, D out_dim.
#include "grounding/text_projection.h"

#include "core/error.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

namespace glamm {

// ref: groundingLMM/model/GLaMM.py _initialize_text_projection_layer:
// nn.ModuleList([nn.Sequential(Linear(H, H), ReLU, Linear(H, out_dim), Dropout(0.0))])
TextProjectionImpl::TextProjectionImpl(int64_t hidden_size, int64_t out_dim) {
    if (hidden_size <= 0 || out_dim <= 0)
        fail("TextProjection: bad widths (hidden ", hidden_size, ", out_dim ", out_dim, ")");
    fc = register_module("0", torch::nn::Sequential(torch::nn::Linear(hidden_size, hidden_size),
                                                    torch::nn::ReLU(),
                                                    torch::nn::Linear(hidden_size, out_dim),
                                                    torch::nn::Dropout(0.0)));
}

at::Tensor TextProjectionImpl::forward(const at::Tensor& hidden) {
    // ref: GLaMM.py _process_hidden_states (the stack + sum over one projection is a no-op).
    const at::Tensor weight = fc[0]->as<torch::nn::Linear>()->weight;
    if (hidden.dim() != 2 || hidden.size(1) != weight.size(1))
        fail("TextProjection: hidden must be [K, ", weight.size(1), "], got ", hidden.sizes());
    return fc->forward(hidden.to(weight.options())); // [K, D]
}

} // namespace glamm
