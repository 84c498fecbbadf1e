// mm_projector forward. Legend: B batch, N image tokens, M CLIP width, H LLaMA hidden size.
#include "vision/mm_projector.h"
#include "core/activations.h"

#include "core/error.h"

#include <torch/torch.h>

#include <regex>

namespace glamm {

// ref: groundingLMM model/llava/llava_with_region_arch.py LlavaMetaModel.__init__ (mlp2x_gelu);
// LLaVA model/multimodal_projector/builder.py (linear, mlp<k>x_gelu)
MmProjectorImpl::MmProjectorImpl(const std::string& projector_type, int64_t mm_hidden_size,
                                 int64_t hidden_size) {
    if (mm_hidden_size <= 0 || hidden_size <= 0)
        fail("mm_projector widths must be positive, got ", mm_hidden_size, " -> ", hidden_size);
    if (projector_type == "linear") {
        torch::nn::Linear linear(mm_hidden_size, hidden_size); // for its initialised shapes
        weight = register_parameter("weight", linear->weight.detach().clone());
        bias   = register_parameter("bias", linear->bias.detach().clone());
        return;
    }
    std::smatch match;
    static const std::regex mlp_gelu("^mlp([0-9]+)x_gelu$");
    if (!std::regex_match(projector_type, match, mlp_gelu) || std::stoi(match[1]) < 1)
        fail("unsupported mm_projector_type \"", projector_type,
             "\" (expected linear or mlp<k>x_gelu)");
    const int depth = std::stoi(match[1]);
    for (int i = 0; i < depth; ++i) {
        const int64_t in = i == 0 ? mm_hidden_size : hidden_size;
        // Sequential index 2i: the GELU between two Linears occupies the odd index.
        linears.push_back(
            register_module(std::to_string(2 * i), torch::nn::Linear(in, hidden_size)));
    }
}

MmProjectorImpl::MmProjectorImpl(const GlammConfig& config)
    : MmProjectorImpl(config.mm_projector_type, config.mm_hidden_size, config.llama.hidden_size) {}

at::Tensor MmProjectorImpl::forward(const at::Tensor& image_features) {
    const at::Tensor& reference = linears.empty() ? weight : linears.front()->weight;
    at::Tensor hidden = image_features.to(reference.device(), reference.scalar_type()); // [B, N, M]
    if (linears.empty()) return torch::nn::functional::linear(hidden, weight, bias);
    for (size_t i = 0; i < linears.size(); ++i) {
        if (i > 0) hidden = glamm::gelu(hidden); // nn.GELU(): exact erf form
        hidden = linears[i](hidden);
    }
    return hidden; // [B, N, H]
}

} // namespace glamm
