// SAM ViT image encoder: patch embedding, absolute positions, windowed/global blocks with
// decomposed relative positions, conv neck.
// Legend: B batch (or windows), H×W token grid, E embed_dim, D prompt_embed_dim, c head_dim.
#include "grounding/sam_image_encoder.h"
#include "core/activations.h"
#include "core/attention.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <algorithm>
#include <cmath>

namespace glamm {

namespace {

// ref: segment_anything/modeling/image_encoder.py get_rel_pos
// Relative-position rows for every (query, key) pair: [q_size, k_size, c].
at::Tensor relative_positions(const at::Tensor& rel_pos, int64_t q_size, int64_t k_size) {
    const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
    at::Tensor table           = rel_pos; // [L, c]
    if (rel_pos.size(0) != max_rel_dist) {
        // F.interpolate(mode="linear", align_corners=False) along the table; only needed when a
        // checkpoint's table was trained for another size (never at SAM's native sizes).
        table = at::upsample_linear1d(rel_pos.to(at::kFloat).t().unsqueeze(0), {max_rel_dist},
                                      /*align_corners=*/false)
                    .squeeze(0)
                    .t()
                    .to(rel_pos.scalar_type());
    }
    const double q_scale = std::max(static_cast<double>(k_size) / q_size, 1.0);
    const double k_scale = std::max(static_cast<double>(q_size) / k_size, 1.0);
    auto options         = at::TensorOptions().dtype(at::kDouble);
    at::Tensor q_coords  = at::arange(q_size, options).unsqueeze(1) * q_scale;
    at::Tensor k_coords  = at::arange(k_size, options).unsqueeze(0) * k_scale;
    at::Tensor relative  = (q_coords - k_coords) + (k_size - 1) * k_scale;
    return table.index_select(0, relative.to(table.device(), at::kLong).flatten())
        .view({q_size, k_size, -1});
}

// ref: segment_anything/modeling/image_encoder.py Attention (use_rel_pos=True, qkv_bias=True)
struct SamAttentionImpl : torch::nn::Module {
    SamAttentionImpl(int64_t dim, int64_t heads, int64_t input_size) : num_heads(heads) {
        const int64_t head_dim = dim / heads;
        scale                  = 1.0 / std::sqrt(static_cast<double>(head_dim));
        qkv                    = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
        proj                   = register_module("proj", torch::nn::Linear(dim, dim));
        rel_pos_h = register_parameter("rel_pos_h", at::zeros({2 * input_size - 1, head_dim}));
        rel_pos_w = register_parameter("rel_pos_w", at::zeros({2 * input_size - 1, head_dim}));
    }

    // x [B, H, W, E] -> [B, H, W, E]; score blocks of at most `chunk_bytes` (at least one head),
    // `should_abort` asked between two of them (a global block is the encoder's longest step).
    at::Tensor forward(const at::Tensor& x, int64_t chunk_bytes, const ShouldAbort& should_abort) {
        const int64_t B = x.size(0), H = x.size(1), W = x.size(2), T = H * W;
        // [3, B*heads, T, c]
        at::Tensor qkv_all = qkv(x).reshape({B, T, 3, num_heads, -1}).permute({2, 0, 3, 1, 4});
        qkv_all            = qkv_all.reshape({3, B * num_heads, T, -1});
        at::Tensor q = qkv_all[0], k = qkv_all[1], v = qkv_all[2];
        const int64_t head_dim = q.size(-1);

        at::Tensor Rh = relative_positions(rel_pos_h, H, H); // [H, H, c]
        at::Tensor Rw = relative_positions(rel_pos_w, W, W); // [W, W, c]

        const int64_t rows  = B * num_heads;
        const int64_t bytes = T * T * static_cast<int64_t>(q.element_size());
        const int64_t chunk = std::max<int64_t>(1, chunk_bytes / std::max<int64_t>(bytes, 1));
        std::vector<at::Tensor> outputs;
        for (int64_t start = 0; start < rows; start += chunk) {
            if (start > 0) stop_if_asked(should_abort, "the SAM image encoder");
            const int64_t end = std::min(rows, start + chunk), n = end - start;
            at::Tensor qc = q.slice(0, start, end); // [n, T, c]
            at::Tensor kc = k.slice(0, start, end);
            at::Tensor vc = v.slice(0, start, end);
            // ref: add_decomposed_rel_pos — uses the unscaled q
            at::Tensor r_q   = qc.reshape({n, H, W, head_dim});
            at::Tensor rel_h = at::einsum("bhwc,hkc->bhwk", {r_q, Rh}); // [n, H, W, H]
            at::Tensor rel_w = at::einsum("bhwc,wkc->bhwk", {r_q, Rw}); // [n, H, W, W]
            if (fused_attention_enabled(qc)) { // scale = head_dim^-0.5, the kernel's own
                // The broadcast sum takes einsum's permuted layout: reshape, not view.
                const at::Tensor bias =
                    (rel_h.unsqueeze(4) + rel_w.unsqueeze(3)).reshape({1, n, T, T});
                outputs.push_back(
                    fused_attention(qc.unsqueeze(0), kc.unsqueeze(0), vc.unsqueeze(0), bias, false)
                        .squeeze(0)); // [n, T, c]
                continue;
            }
            at::Tensor attn = at::matmul(qc * scale, kc.transpose(-2, -1)); // [n, T, T]
            attn            = (attn.view({n, H, W, H, W}) + rel_h.unsqueeze(4) + rel_w.unsqueeze(3))
                       .view({n, T, T});
            attn = at::softmax(attn, -1);
            outputs.push_back(at::matmul(attn, vc)); // [n, T, c]
        }
        at::Tensor out = outputs.size() == 1 ? outputs[0] : at::cat(outputs, 0);
        out            = out.reshape({B, num_heads, H, W, head_dim}) // fused output: any layout
                  .permute({0, 2, 3, 1, 4})
                  .reshape({B, H, W, -1});
        return proj(out);
    }

    int64_t num_heads;
    double scale;
    torch::nn::Linear qkv{nullptr}, proj{nullptr};
    at::Tensor rel_pos_h, rel_pos_w; // [2S-1, c]
};
TORCH_MODULE(SamAttention);

// ref: segment_anything/modeling/common.py MLPBlock (act = nn.GELU, exact erf form)
struct SamEncoderMlpImpl : torch::nn::Module {
    SamEncoderMlpImpl(int64_t dim, int64_t hidden) {
        lin1 = register_module("lin1", torch::nn::Linear(dim, hidden));
        lin2 = register_module("lin2", torch::nn::Linear(hidden, dim));
    }
    at::Tensor forward(const at::Tensor& x) { return lin2(glamm::gelu(lin1(x))); }
    torch::nn::Linear lin1{nullptr}, lin2{nullptr};
};
TORCH_MODULE(SamEncoderMlp);

// ref: segment_anything/modeling/image_encoder.py Block
struct SamBlockImpl : torch::nn::Module {
    SamBlockImpl(const SamConfig& c, int64_t window) : window_size(window) {
        auto ln = torch::nn::LayerNormOptions({c.embed_dim}).eps(c.encoder_layer_norm_eps);
        norm1   = register_module("norm1", torch::nn::LayerNorm(ln));
        attn    = register_module(
               "attn", SamAttention(c.embed_dim, c.num_heads, window > 0 ? window : c.grid_size()));
        norm2 = register_module("norm2", torch::nn::LayerNorm(ln));
        mlp   = register_module("mlp", SamEncoderMlp(c.embed_dim, c.mlp_dim()));
    }

    // [1, G, G, E] -> [1, G, G, E]
    at::Tensor forward(const at::Tensor& x, int64_t chunk_bytes, const ShouldAbort& should_abort) {
        const at::Tensor& residual = x;
        at::Tensor hidden          = norm1(x);
        if (window_size > 0) {
            // ref: window_partition — zero-pad AFTER norm1 (bottom/right), split into windows
            const int64_t B = hidden.size(0), H = hidden.size(1), W = hidden.size(2),
                          E     = hidden.size(3);
            const int64_t ws    = window_size;
            const int64_t pad_h = (ws - H % ws) % ws, pad_w = (ws - W % ws) % ws;
            const int64_t Hp = H + pad_h, Wp = W + pad_w;
            if (pad_h > 0 || pad_w > 0)
                hidden = at::constant_pad_nd(hidden, {0, 0, 0, pad_w, 0, pad_h});
            hidden = hidden.view({B, Hp / ws, ws, Wp / ws, ws, E})
                         .permute({0, 1, 3, 2, 4, 5})
                         .reshape({-1, ws, ws, E}); // [B*nWin, ws, ws, E]
            hidden = attn->forward(hidden, chunk_bytes, should_abort);
            // ref: window_unpartition — reassemble, crop the padding
            hidden = hidden.view({B, Hp / ws, Wp / ws, ws, ws, E})
                         .permute({0, 1, 3, 2, 4, 5})
                         .reshape({B, Hp, Wp, E});
            hidden = hidden.slice(1, 0, H).slice(2, 0, W);
        } else {
            hidden = attn->forward(hidden, chunk_bytes, should_abort);
        }
        at::Tensor out = residual + hidden;
        return out + mlp(norm2(out));
    }

    int64_t window_size; // 0 = global attention
    torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    SamAttention attn{nullptr};
    SamEncoderMlp mlp{nullptr};
};
TORCH_MODULE(SamBlock);

} // namespace

SamLayerNorm2dImpl::SamLayerNorm2dImpl(int64_t channels, double eps_) : eps(eps_) {
    weight = register_parameter("weight", at::ones({channels}));
    bias   = register_parameter("bias", at::zeros({channels}));
}

at::Tensor SamLayerNorm2dImpl::forward(const at::Tensor& x) {
    // ref: segment_anything/modeling/common.py LayerNorm2d
    at::Tensor mean     = x.mean(1, /*keepdim=*/true);
    at::Tensor centered = x - mean;
    at::Tensor var      = centered.pow(2).mean(1, /*keepdim=*/true);
    at::Tensor normed   = centered / at::sqrt(var + eps);
    return weight.view({-1, 1, 1}) * normed + bias.view({-1, 1, 1});
}

SamImageEncoderImpl::SamImageEncoderImpl(const SamConfig& c) : config(c) {
    const int64_t E = c.embed_dim, D = c.prompt_embed_dim, G = c.grid_size();
    if (E % c.num_heads != 0)
        fail("SAM image encoder: embed_dim ", E, " not divisible by num_heads ", c.num_heads);
    auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
    patch_proj       = patch_embed->register_module(
              "proj",
              torch::nn::Conv2d(torch::nn::Conv2dOptions(3, E, c.patch_size).stride(c.patch_size)));
    pos_embed = register_parameter("pos_embed", at::zeros({1, G, G, E}));

    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.depth; ++i) {
        const bool global = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(),
                                      i) != c.global_attn_indexes.end();
        blocks->push_back(SamBlock(c, global ? 0 : c.window_size));
    }

    neck = register_module(
        "neck", torch::nn::Sequential(
                    torch::nn::Conv2d(torch::nn::Conv2dOptions(E, D, 1).bias(false)),
                    SamLayerNorm2d(D, c.encoder_layer_norm_eps),
                    torch::nn::Conv2d(torch::nn::Conv2dOptions(D, D, 3).padding(1).bias(false)),
                    SamLayerNorm2d(D, c.encoder_layer_norm_eps)));
}

at::Tensor SamImageEncoderImpl::forward(const at::Tensor& pixels,
                                        std::vector<at::Tensor>* block_outputs,
                                        const ShouldAbort& should_abort) {
    const int64_t S = config.img_size;
    if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != S || pixels.size(3) != S)
        fail("SAM image encoder: expected pixels [B, 3, ", S, ", ", S, "], got ", pixels.sizes());
    // ref: ImageEncoderViT.forward — PatchEmbed (conv, then B C H W -> B H W C) + pos_embed
    at::Tensor hidden = patch_proj(pixels.to(pos_embed.scalar_type())).permute({0, 2, 3, 1});
    hidden            = hidden + pos_embed; // [B, G, G, E]
    for (size_t i = 0; i < blocks->size(); ++i) {
        stop_if_asked(should_abort, "the SAM image encoder");
        hidden =
            blocks[i]->as<SamBlockImpl>()->forward(hidden, attention_chunk_bytes, should_abort);
        if (block_outputs) block_outputs->push_back(hidden);
    }
    return neck->forward(hidden.permute({0, 3, 1, 2}).contiguous()); // [B, D, G, G]
}

} // namespace glamm
