// text_hidden_fcs: GLaMM's projection of the [SEG] hidden states into SAM's prompt space,
// Linear(H, H) -> ReLU -> Linear(H, out_dim) -> Dropout(0).
// Legend: K [SEG] tokens, H LLaMA hidden size, D out_dim (= SAM prompt_embed_dim).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace glamm {

// The module is the ModuleList `text_hidden_fcs` itself: its one child "0" is the Sequential, so
// named_parameters() are "0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias" and load with
// report.load_module(projection, kTextProjectionPrefix).
struct TextProjectionImpl : torch::nn::Module {
    TextProjectionImpl(int64_t hidden_size, int64_t out_dim);
    // hidden [K, H] (K may be 0) -> [K, D] in the module's dtype.
    at::Tensor forward(const at::Tensor& hidden);

    torch::nn::Sequential fc{nullptr}; // registered as "0"
};
TORCH_MODULE(TextProjection);

// Checkpoint prefix of the module (model/GLaMM.py _initialize_text_projection_layer).
constexpr const char* kTextProjectionPrefix = "model.text_hidden_fcs.";

} // namespace glamm
