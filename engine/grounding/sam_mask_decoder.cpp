// SAM mask decoder and its two-way transformer.
// Legend: N prompts, D prompt_embed_dim, G grid, M num_mask_tokens, T tokens, h heads.
#include "grounding/sam_mask_decoder.h"
#include "core/activations.h"

#include "core/error.h"
#include "grounding/sam_image_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <cmath>

namespace glamm {

namespace {

// Output upscaling: two stride-2 transposed convs, D -> D/4 -> D/8 (fixed in SAM's MaskDecoder).
constexpr int64_t kUpscaleStride       = 2;
constexpr int64_t kUpscaleFirstDivisor = 4;
constexpr int64_t kUpscaleOutDivisor   = 8;
// Hypernetwork MLPs have three layers (fixed in SAM's MaskDecoder).
constexpr int64_t kHypernetworkDepth = 3;

// ConvTranspose2d with kernel == stride, no padding, one group (how output_upscaling builds
// them): every input pixel paints its own k×k output patch, so the op is one matmul.
// Written out because LibTorch 1.13's mkldnn bf16 conv_transpose2d rejects these valid shapes
// ("expected input ... to have <out> channels"); in fp32 the result equals conv_transpose2d.
// x [N, C, H, W] -> [N, O, H*k, W*k]
at::Tensor conv_transpose_patchwise(const at::Tensor& x,
                                    const torch::nn::ConvTranspose2dImpl& conv) {
    const at::Tensor& weight = conv.weight; // [C, O, k, k]
    const int64_t C = weight.size(0), O = weight.size(1), kh = weight.size(2), kw = weight.size(3);
    const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
    if (x.size(1) != C) fail("SAM output upscaling: expected ", C, " channels, got ", x.sizes());
    at::Tensor out =
        at::matmul(x.permute({0, 2, 3, 1}), weight.reshape({C, O * kh * kw})); // [N, H, W, O*k*k]
    out =
        out.view({N, H, W, O, kh, kw}).permute({0, 3, 1, 4, 2, 5}).reshape({N, O, H * kh, W * kw});
    if (conv.bias.defined()) out = out + conv.bias.view({1, O, 1, 1});
    return out;
}

// ref: transformer.py MLPBlock with act = nn.ReLU
struct SamDecoderMlpImpl : torch::nn::Module {
    SamDecoderMlpImpl(int64_t dim, int64_t hidden) {
        lin1 = register_module("lin1", torch::nn::Linear(dim, hidden));
        lin2 = register_module("lin2", torch::nn::Linear(hidden, dim));
    }
    at::Tensor forward(const at::Tensor& x) { return lin2(at::relu(lin1(x))); }
    torch::nn::Linear lin1{nullptr}, lin2{nullptr};
};
TORCH_MODULE(SamDecoderMlp);

// ref: transformer.py TwoWayAttentionBlock
struct SamTwoWayAttentionBlockImpl : torch::nn::Module {
    SamTwoWayAttentionBlockImpl(const SamConfig& c, bool skip_pe) : skip_first_layer_pe(skip_pe) {
        const int64_t D = c.prompt_embed_dim;
        auto ln         = torch::nn::LayerNormOptions({D}).eps(c.decoder_layer_norm_eps);
        self_attn = register_module("self_attn", SamDecoderAttention(D, c.decoder_num_heads, 1));
        norm1     = register_module("norm1", torch::nn::LayerNorm(ln));
        cross_attn_token_to_image = register_module(
            "cross_attn_token_to_image",
            SamDecoderAttention(D, c.decoder_num_heads, c.attention_downsample_rate));
        norm2                     = register_module("norm2", torch::nn::LayerNorm(ln));
        mlp                       = register_module("mlp", SamDecoderMlp(D, c.decoder_mlp_dim));
        norm3                     = register_module("norm3", torch::nn::LayerNorm(ln));
        norm4                     = register_module("norm4", torch::nn::LayerNorm(ln));
        cross_attn_image_to_token = register_module(
            "cross_attn_image_to_token",
            SamDecoderAttention(D, c.decoder_num_heads, c.attention_downsample_rate));
    }

    // queries [N, T, D], keys [N, G*G, D], query_pe [N, T, D], key_pe [N, G*G, D]
    std::pair<at::Tensor, at::Tensor> forward(at::Tensor queries, at::Tensor keys,
                                              const at::Tensor& query_pe,
                                              const at::Tensor& key_pe) {
        // Self attention of the tokens (layer 0 skips the positional term and the residual).
        if (skip_first_layer_pe) {
            queries = self_attn(queries, queries, queries);
        } else {
            at::Tensor q = queries + query_pe;
            queries      = queries + self_attn(q, q, queries);
        }
        queries = norm1(queries);
        // Tokens attend to the image.
        at::Tensor q = queries + query_pe;
        at::Tensor k = keys + key_pe;
        queries      = norm2(queries + cross_attn_token_to_image(q, k, keys));
        // MLP on the tokens.
        queries = norm3(queries + mlp(queries));
        // The image attends to the tokens.
        q    = queries + query_pe;
        k    = keys + key_pe;
        keys = norm4(keys + cross_attn_image_to_token(k, q, queries));
        return {queries, keys};
    }

    bool skip_first_layer_pe;
    SamDecoderAttention self_attn{nullptr}, cross_attn_token_to_image{nullptr},
        cross_attn_image_to_token{nullptr};
    torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr}, norm4{nullptr};
    SamDecoderMlp mlp{nullptr};
};
TORCH_MODULE(SamTwoWayAttentionBlock);

} // namespace

SamDecoderAttentionImpl::SamDecoderAttentionImpl(int64_t dim, int64_t heads,
                                                 int64_t downsample_rate)
    : num_heads(heads) {
    const int64_t internal_dim = dim / downsample_rate;
    if (internal_dim % heads != 0)
        fail("SAM mask decoder: attention width ", internal_dim, " not divisible by ", heads,
             " heads");
    q_proj   = register_module("q_proj", torch::nn::Linear(dim, internal_dim));
    k_proj   = register_module("k_proj", torch::nn::Linear(dim, internal_dim));
    v_proj   = register_module("v_proj", torch::nn::Linear(dim, internal_dim));
    out_proj = register_module("out_proj", torch::nn::Linear(internal_dim, dim));
}

at::Tensor SamDecoderAttentionImpl::forward(const at::Tensor& q_in, const at::Tensor& k_in,
                                            const at::Tensor& v_in) {
    // [N, T, C] -> [N, h, T, C/h]
    auto separate = [this](const at::Tensor& x) {
        return x.reshape({x.size(0), x.size(1), num_heads, -1}).transpose(1, 2);
    };
    at::Tensor q          = separate(q_proj(q_in));
    at::Tensor k          = separate(k_proj(k_in));
    at::Tensor v          = separate(v_proj(v_in));
    const double head_dim = static_cast<double>(q.size(-1));
    at::Tensor attn = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(head_dim); // [N, h, Tq, Tk]
    attn            = at::softmax(attn, -1);
    at::Tensor out  = at::matmul(attn, v); // [N, h, Tq, C/h]
    out             = out.transpose(1, 2).reshape({out.size(0), out.size(2), -1});
    return out_proj(out);
}

SamTwoWayTransformerImpl::SamTwoWayTransformerImpl(const SamConfig& c) {
    const int64_t D = c.prompt_embed_dim;
    layers          = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.decoder_depth; ++i)
        layers->push_back(SamTwoWayAttentionBlock(c, /*skip_first_layer_pe=*/i == 0));
    final_attn_token_to_image =
        register_module("final_attn_token_to_image",
                        SamDecoderAttention(D, c.decoder_num_heads, c.attention_downsample_rate));
    norm_final_attn = register_module(
        "norm_final_attn",
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(c.decoder_layer_norm_eps)));
}

std::pair<at::Tensor, at::Tensor> SamTwoWayTransformerImpl::forward(const at::Tensor& image,
                                                                    const at::Tensor& image_pe,
                                                                    const at::Tensor& tokens) {
    // ref: transformer.py TwoWayTransformer.forward — B C H W -> B HW C
    at::Tensor keys    = image.flatten(2).permute({0, 2, 1});    // [N, G*G, D]
    at::Tensor key_pe  = image_pe.flatten(2).permute({0, 2, 1}); // [N, G*G, D]
    at::Tensor queries = tokens;                                 // [N, T, D]
    for (size_t i = 0; i < layers->size(); ++i)
        std::tie(queries, keys) =
            layers[i]->as<SamTwoWayAttentionBlockImpl>()->forward(queries, keys, tokens, key_pe);
    at::Tensor q = queries + tokens;
    at::Tensor k = keys + key_pe;
    queries      = norm_final_attn(queries + final_attn_token_to_image(q, k, keys));
    return {queries, keys};
}

SamMlpImpl::SamMlpImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim,
                       int64_t num_layers) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < num_layers; ++i) {
        const int64_t in  = i == 0 ? input_dim : hidden_dim;
        const int64_t out = i == num_layers - 1 ? output_dim : hidden_dim;
        layers->push_back(torch::nn::Linear(in, out));
    }
}

at::Tensor SamMlpImpl::forward(const at::Tensor& x) {
    at::Tensor h = x;
    for (size_t i = 0; i < layers->size(); ++i) {
        h = layers[i]->as<torch::nn::LinearImpl>()->forward(h);
        if (i + 1 < layers->size()) h = at::relu(h);
    }
    return h;
}

SamMaskDecoderImpl::SamMaskDecoderImpl(const SamConfig& c) : config(c) {
    const int64_t D = c.prompt_embed_dim, M = c.num_mask_tokens();
    if (D % kUpscaleOutDivisor != 0)
        fail("SAM mask decoder: prompt_embed_dim ", D, " must be divisible by ",
             kUpscaleOutDivisor);
    const int64_t d4 = D / kUpscaleFirstDivisor, d8 = D / kUpscaleOutDivisor;
    transformer = register_module("transformer", SamTwoWayTransformer(c));
    iou_token   = register_module("iou_token", torch::nn::Embedding(1, D));
    mask_tokens = register_module("mask_tokens", torch::nn::Embedding(M, D));
    using torch::nn::ConvTranspose2dOptions;
    output_upscaling = register_module(
        "output_upscaling",
        torch::nn::Sequential(
            torch::nn::ConvTranspose2d(
                ConvTranspose2dOptions(D, d4, kUpscaleStride).stride(kUpscaleStride)),
            SamLayerNorm2d(d4, c.encoder_layer_norm_eps), torch::nn::GELU(),
            torch::nn::ConvTranspose2d(
                ConvTranspose2dOptions(d4, d8, kUpscaleStride).stride(kUpscaleStride)),
            torch::nn::GELU()));
    output_hypernetworks_mlps =
        register_module("output_hypernetworks_mlps", torch::nn::ModuleList());
    for (int64_t i = 0; i < M; ++i)
        output_hypernetworks_mlps->push_back(SamMlp(D, D, d8, kHypernetworkDepth));
    iou_prediction_head = register_module("iou_prediction_head",
                                          SamMlp(D, c.iou_head_hidden_dim, M, c.iou_head_depth));
}

SamMaskDecoderOutput SamMaskDecoderImpl::forward(const at::Tensor& image_embeddings,
                                                 const at::Tensor& image_pe,
                                                 const at::Tensor& sparse, const at::Tensor& dense,
                                                 SamMaskDecoderTrace* trace) {
    const int64_t D = config.prompt_embed_dim, G = config.grid_size(), M = config.num_mask_tokens();
    const at::ScalarType dtype = iou_token->weight.scalar_type();
    if (sparse.dim() != 3 || sparse.size(2) != D)
        fail("SAM mask decoder: expected sparse prompts [N, P, ", D, "], got ", sparse.sizes());
    const int64_t n = sparse.size(0);
    if (image_embeddings.dim() != 4 ||
        (image_embeddings.size(0) != 1 && image_embeddings.size(0) != n) ||
        image_embeddings.size(1) != D || image_embeddings.size(2) != G ||
        image_embeddings.size(3) != G)
        fail("SAM mask decoder: expected image embeddings [1 or ", n, ", ", D, ", ", G, ", ", G,
             "], got ", image_embeddings.sizes());
    if (dense.dim() != 4 || dense.size(0) != n || dense.size(1) != D || dense.size(2) != G ||
        dense.size(3) != G)
        fail("SAM mask decoder: expected dense prompts [", n, ", ", D, ", ", G, ", ", G, "], got ",
             dense.sizes());
    const int64_t upscaled_size = G * kUpscaleStride * kUpscaleStride;
    if (n == 0) {
        return {at::empty({0, 1, upscaled_size, upscaled_size}, iou_token->weight.options()),
                at::empty({0, 1}, iou_token->weight.options())};
    }

    // ref: mask_decoder.py MaskDecoder.predict_masks
    at::Tensor output_tokens = at::cat({iou_token->weight, mask_tokens->weight}, 0); // [1+M, D]
    output_tokens            = output_tokens.unsqueeze(0).expand({n, -1, -1});
    at::Tensor tokens        = at::cat({output_tokens, sparse.to(dtype)}, 1); // [N, T, D]
    // One image shared by all prompts (repeat_interleave of a batch of one), or one per prompt.
    at::Tensor src =
        image_embeddings.to(dtype).expand({n, -1, -1, -1}) + dense.to(dtype); // [N, D, G, G]
    at::Tensor pos_src = image_pe.to(dtype).expand({n, -1, -1, -1});          // [N, D, G, G]

    at::Tensor hs, keys;
    std::tie(hs, keys)         = transformer(src, pos_src, tokens); // [N, T, D], [N, G*G, D]
    at::Tensor iou_token_out   = hs.select(1, 0);                   // [N, D]
    at::Tensor mask_tokens_out = hs.slice(1, 1, 1 + M);             // [N, M, D]

    at::Tensor image = keys.transpose(1, 2).reshape({n, D, G, G});
    // output_upscaling: ConvT, LayerNorm2d, GELU, ConvT, GELU
    at::Tensor upscaled =
        conv_transpose_patchwise(image, output_upscaling->at<torch::nn::ConvTranspose2dImpl>(0));
    upscaled = glamm::gelu(output_upscaling->at<SamLayerNorm2dImpl>(1).forward(upscaled));
    upscaled =
        conv_transpose_patchwise(upscaled, output_upscaling->at<torch::nn::ConvTranspose2dImpl>(3));
    upscaled = glamm::gelu(upscaled); // [N, D/8, 4G, 4G]
    std::vector<at::Tensor> hyper_in_list;
    for (int64_t i = 0; i < M; ++i)
        hyper_in_list.push_back(
            output_hypernetworks_mlps[i]->as<SamMlpImpl>()->forward(mask_tokens_out.select(1, i)));
    at::Tensor hyper_in = at::stack(hyper_in_list, 1); // [N, M, D/8]
    const int64_t c = upscaled.size(1), h = upscaled.size(2), w = upscaled.size(3);
    at::Tensor masks =
        at::matmul(hyper_in, upscaled.reshape({n, c, h * w})).view({n, -1, h, w}); // [N, M, 4G, 4G]
    at::Tensor iou_pred = iou_prediction_head(iou_token_out);                      // [N, M]

    if (trace) {
        trace->tokens   = hs;
        trace->image    = keys;
        trace->upscaled = upscaled;
    }
    // ref: MaskDecoder.forward with multimask_output=False — mask token 0 only
    return {masks.slice(1, 0, 1), iou_pred.slice(1, 0, 1)};
}

} // namespace glamm
