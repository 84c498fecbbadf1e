// Checkpoint folders: the .bin release fixture against its safetensors reference, conversion to
// safetensors, every broken-folder case with its message, strict module loading, the golden tiny
// release.
#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

using namespace glamm;
namespace fs = std::filesystem;

namespace {

#define EXPECT_HAS(haystack, needle)                                                               \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::string release_dir() {
    return test::data_path("bin/release");
}
std::string reference_path() {
    return test::data_path("bin/reference.safetensors");
}

std::string open_error(const std::string& path) {
    return test::error_of([&] { Checkpoint::open(path); });
}

// Every tensor of `got` equals (bit for bit, same dtype) the tensor of the same name in `ref`.
void expect_same_tensors(const Checkpoint& got, const Checkpoint& ref) {
    ASSERT_EQ(got.names(), ref.names());
    for (const auto& name : ref.names()) {
        const at::Tensor a = got.tensor(name), b = ref.tensor(name);
        EXPECT_EQ(a.scalar_type(), b.scalar_type()) << name;
        EXPECT_EQ(a.sizes(), b.sizes()) << name;
        EXPECT_TRUE(torch::equal(a, b)) << name;
    }
}

// A two-shard safetensors folder: a.* in shard 1, b in shard 2, with its index.
std::string make_sharded_folder(const std::string& tag) {
    const std::string dir = test::make_temp_dir(tag);
    const float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    write_safetensors(
        dir + "/model-00001-of-00002.safetensors",
        {{"a.weight", DType::F32, {2, 2}, a, sizeof a}, {"a.bias", DType::F32, {2}, a, 8}});
    write_safetensors(dir + "/model-00002-of-00002.safetensors",
                      {{"b", DType::F32, {2}, b, sizeof b}});
    nlohmann::json index;
    index["weight_map"] = {{"a.weight", "model-00001-of-00002.safetensors"},
                           {"a.bias", "model-00001-of-00002.safetensors"},
                           {"b", "model-00002-of-00002.safetensors"}};
    write_file_atomic(dir + "/model.safetensors.index.json", index.dump());
    return dir;
}

void edit_index(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
    const std::string path = dir + "/model.safetensors.index.json";
    nlohmann::json index   = nlohmann::json::parse(read_file(path));
    edit(index);
    write_file_atomic(path, index.dump());
}

// A safetensors file from a raw header and `data_bytes` bytes of data.
std::string raw_safetensors(const std::string& header, size_t data_bytes) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + std::string(data_bytes, '\0');
}

// A small module: linear (weight [3,4], bias [3]) and a buffer.
struct TinyImpl : torch::nn::Module {
    TinyImpl() {
        linear = register_module("linear", torch::nn::Linear(4, 3));
        scale  = register_buffer("scale", torch::ones({2}));
    }
    torch::nn::Linear linear{nullptr};
    torch::Tensor scale;
};
TORCH_MODULE(Tiny);

} // namespace

// ---- the .bin release fixture

TEST(Checkpoint, BinReleaseMatchesItsSafetensorsReference) {
    Checkpoint bin = Checkpoint::open(release_dir());
    Checkpoint ref = Checkpoint::open(reference_path());
    EXPECT_EQ(bin.format(), "pytorch");
    EXPECT_EQ(bin.files().size(), 2u);
    EXPECT_EQ(bin.size(), 13u);
    expect_same_tensors(bin, ref);
    EXPECT_EQ(bin.stored("lm_head.weight").dtype, DType::BF16);
    EXPECT_EQ(bin.stored("model.proj.weight").dtype, DType::F32);
    EXPECT_EQ(bin.stored("model.layers.0.bias").dtype, DType::F16);
    EXPECT_EQ(bin.stored("model.counts").dtype, DType::I64);
    EXPECT_EQ(bin.tensor("model.counts")[2].item<int64_t>(), int64_t{1} << 40);
    EXPECT_EQ(bin.stored("model.mask").dtype, DType::BOOL);
    EXPECT_EQ(bin.stored("model.temperature").shape, std::vector<int64_t>{});
    EXPECT_FLOAT_EQ(bin.tensor("model.temperature").item<float>(), 0.5f);
}

TEST(Checkpoint, BinViewsKeepStridesOffsetsAndSharing) {
    Checkpoint bin = Checkpoint::open(release_dir());
    // Tied weights: one storage, same bytes.
    const StoredTensor& embed = bin.stored("model.embed_tokens.weight");
    const StoredTensor& head  = bin.stored("lm_head.weight");
    EXPECT_EQ(embed.offset, head.offset);
    EXPECT_EQ(embed.file, head.file);
    EXPECT_EQ(bin.tensor("lm_head.weight").data_ptr(),
              bin.tensor("model.embed_tokens.weight").data_ptr());
    // Transposed view of another tensor's storage.
    const StoredTensor& w  = bin.stored("model.proj.weight");
    const StoredTensor& wt = bin.stored("model.proj_t.weight");
    EXPECT_TRUE(w.strides.empty());
    EXPECT_EQ(wt.strides, (std::vector<int64_t>{1, 4}));
    EXPECT_EQ(wt.offset, w.offset);
    EXPECT_TRUE(
        torch::equal(bin.tensor("model.proj_t.weight"), bin.tensor("model.proj.weight").t()));
    // big[1:3, 2:5] of a [4,6] bf16 storage: offset 8 elements, strides (6, 1).
    const StoredTensor& window = bin.stored("model.window.weight");
    EXPECT_EQ(window.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(window.strides, (std::vector<int64_t>{6, 1}));
    EXPECT_EQ(window.storage_bytes, (24u - 8u) * 2u);
    // base[5:8] of 10 floats: contiguous, offset 5 elements.
    const StoredTensor& bias = bin.stored("model.proj.bias");
    EXPECT_TRUE(bias.strides.empty());
    EXPECT_EQ(bias.storage_bytes, 5u * 4u);
    // Stride-0 (expanded) view.
    EXPECT_EQ(bin.stored("model.expanded").strides, (std::vector<int64_t>{0, 1}));
}

TEST(Checkpoint, ConvertBinReleaseToSafetensors) {
    const std::string out = test::make_temp_dir("convert") + "/out";
    Checkpoint bin        = Checkpoint::open(release_dir());
    convert_checkpoint(bin, out);
    EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
    EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
    EXPECT_EQ(read_file(out + "/config.json"), read_file(release_dir() + "/config.json"));
    EXPECT_EQ(read_file(out + "/tokenizer_config.json"),
              read_file(release_dir() + "/tokenizer_config.json"));
    EXPECT_FALSE(fs::exists(out + "/pytorch_model.bin.index.json"));
    EXPECT_FALSE(fs::exists(out + "/pytorch_model-00001-of-00002.bin"));
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(out))
        files += e.is_regular_file(); // no temp files left
    EXPECT_EQ(files, 3u);
    Checkpoint converted = Checkpoint::open(out);
    EXPECT_EQ(converted.format(), "safetensors");
    expect_same_tensors(converted, bin);
    expect_same_tensors(converted, Checkpoint::open(reference_path()));
    for (const auto& name : converted.names()) {
        EXPECT_TRUE(converted.stored(name).strides.empty()) << name;
        // Wider elements first: every tensor aligned to its element size.
        EXPECT_EQ(converted.stored(name).offset % dtype_size(converted.stored(name).dtype), 0u)
            << name;
    }
    // A second conversion into the same folder is refused (it holds weights now).
    try {
        convert_checkpoint(bin, out);
        ADD_FAILURE() << "converting into a folder with weights succeeded";
    } catch (const Error& e) {
        EXPECT_HAS(e.what(),
                   "already holds weights (model.safetensors); convert into an empty folder");
    }
    // Converting a folder onto itself is refused.
    try {
        convert_checkpoint(converted, out);
        ADD_FAILURE() << "converting a folder onto itself succeeded";
    } catch (const Error& e) {
        EXPECT_HAS(e.what(), "the output folder is the source folder");
    }
}

TEST(Checkpoint, ConvertShardsBySize) {
    const std::string out = test::make_temp_dir("convert-shards") + "/out";
    Checkpoint bin        = Checkpoint::open(release_dir());
    std::vector<std::string> progress;
    ConvertOptions options;
    options.max_shard_bytes = 64;
    options.progress        = [&](const std::string& file, size_t done, size_t total) {
        progress.push_back(cat(file, " ", done, "/", total));
    };
    convert_checkpoint(bin, out, options);
    ASSERT_GT(progress.size(), 2u);
    const size_t count = progress.size();
    EXPECT_EQ(progress.front(),
              cat("model-00001-of-", count < 10 ? "0000" : "000", count, ".safetensors 1/", count));
    const auto index = nlohmann::json::parse(read_file(out + "/model.safetensors.index.json"));
    EXPECT_EQ(index["weight_map"].size(), bin.size());
    uint64_t total = 0;
    for (const auto& name : bin.names()) {
        const StoredTensor& t = bin.stored(name);
        uint64_t n            = dtype_size(t.dtype);
        for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
        total += n;
    }
    EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
    Checkpoint converted = Checkpoint::open(out);
    EXPECT_EQ(converted.files().size(), count);
    for (const auto& file : converted.files()) EXPECT_LE(fs::file_size(file), 64u + 4096u) << file;
    expect_same_tensors(converted, bin);
}

// ---- broken folders, one message each

TEST(Checkpoint, TruncatedSafetensorsShard) {
    const std::string dir  = make_sharded_folder("trunc-st");
    const std::string file = dir + "/model-00001-of-00002.safetensors";
    fs::resize_file(file, fs::file_size(file) - 4);
    const std::string msg = open_error(dir);
    EXPECT_HAS(msg, file);
    EXPECT_HAS(msg, "data_offsets end 24 lies past the data area (20 bytes): the file is truncated "
                    "or the header lies");
    // Cut inside the header.
    fs::resize_file(file, 20);
    EXPECT_HAS(open_error(dir),
               "runs past the end of the file (20 bytes): truncated or not a safetensors file");
}

TEST(Checkpoint, SafetensorsHeaderLyingAboutOffsetsAndSizes) {
    const std::string dir = test::make_temp_dir("lying-st");
    test::write_bytes(
        dir + "/model.safetensors",
        raw_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,64]}})", 8));
    EXPECT_HAS(open_error(dir),
               "tensor \"w\": data_offsets end 64 lies past the data area (8 bytes)");
    test::write_bytes(
        dir + "/model.safetensors",
        raw_safetensors(R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}})", 8));
    EXPECT_HAS(open_error(dir), "tensor \"w\": 8 bytes stored but shape [3,2] of BF16 needs 12");
    test::write_bytes(
        dir + "/model.safetensors",
        raw_safetensors(
            R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", 8));
    EXPECT_HAS(open_error(dir), "tensor \"w\": shape overflows");
    std::string huge(8, '\xff');
    test::write_bytes(dir + "/model.safetensors", huge + "{}");
    EXPECT_HAS(open_error(dir), "header length 18446744073709551615 exceeds the");
}

TEST(Checkpoint, MissingShardNamedInIndex) {
    const std::string dir = make_sharded_folder("missing-shard");
    fs::remove(dir + "/model-00002-of-00002.safetensors");
    EXPECT_HAS(open_error(dir), dir +
                                    "/model.safetensors.index.json lists shard "
                                    "model-00002-of-00002.safetensors, which is missing from " +
                                    dir);
}

TEST(Checkpoint, ShardHoldsTensorTheIndexPlacesElsewhere) {
    const std::string dir = make_sharded_folder("misplaced");
    edit_index(dir, [](nlohmann::json& j) {
        j["weight_map"]["a.bias"] = "model-00002-of-00002.safetensors";
    });
    EXPECT_HAS(open_error(dir),
               "places \"a.bias\" in model-00002-of-00002.safetensors but it is in "
               "model-00001-of-00002.safetensors");
}

TEST(Checkpoint, IndexAndShardsDisagreeOnTheKeys) {
    const std::string dir = make_sharded_folder("index-extra");
    edit_index(dir, [](nlohmann::json& j) {
        j["weight_map"]["ghost"] = "model-00002-of-00002.safetensors";
    });
    EXPECT_HAS(
        open_error(dir),
        "lists \"ghost\" in model-00002-of-00002.safetensors but the shard does not hold it");
    const std::string dir2 = make_sharded_folder("index-missing");
    edit_index(dir2, [](nlohmann::json& j) { j["weight_map"].erase("a.bias"); });
    EXPECT_HAS(open_error(dir2),
               "tensor \"a.bias\" is not listed in " + dir2 + "/model.safetensors.index.json");
}

TEST(Checkpoint, BrokenIndexFiles) {
    const std::string dir = make_sharded_folder("bad-index");
    write_file_atomic(dir + "/model.safetensors.index.json", "{\"weight_map\": [1, 2]}");
    EXPECT_HAS(open_error(dir), "model.safetensors.index.json: no \"weight_map\" object");
    write_file_atomic(dir + "/model.safetensors.index.json", "{\"weight_map\": {\"a\": 3}}");
    EXPECT_HAS(open_error(dir), "weight_map[\"a\"] is not a string");
    write_file_atomic(dir + "/model.safetensors.index.json",
                      "{\"weight_map\": {\"a\": \"../x.safetensors\"}}");
    EXPECT_HAS(open_error(dir), "shard name \"../x.safetensors\" must be a plain file name");
    write_file_atomic(dir + "/model.safetensors.index.json", "{oops");
    EXPECT_HAS(open_error(dir), "model.safetensors.index.json: not valid JSON");
}

TEST(Checkpoint, EmptyOrMissingFolders) {
    EXPECT_HAS(open_error("/nonexistent/glamm"), "/nonexistent/glamm: no such file or folder");
    const std::string dir = test::make_temp_dir("empty-ckpt");
    EXPECT_HAS(open_error(dir), dir + ": no weights found");
}

TEST(Checkpoint, BinShardMissingFromBinIndex) {
    const std::string dir = test::make_temp_dir("bin-missing");
    fs::copy_file(release_dir() + "/pytorch_model.bin.index.json",
                  dir + "/pytorch_model.bin.index.json");
    fs::copy_file(release_dir() + "/pytorch_model-00001-of-00002.bin",
                  dir + "/pytorch_model-00001-of-00002.bin");
    EXPECT_HAS(open_error(dir),
               "lists shard pytorch_model-00002-of-00002.bin, which is missing from " + dir);
    // The evil pickle as a shard: named file, named global.
    fs::copy_file(test::data_path("bin/evil.bin"), dir + "/pytorch_model-00002-of-00002.bin");
    const std::string msg = open_error(dir);
    EXPECT_HAS(msg, dir + "/pytorch_model-00002-of-00002.bin");
    EXPECT_HAS(msg, "global \"os.system\" is not allowed");
}

// ---- strict module loading

TEST(LoadReport, LoadsAndConvertsDtype) {
    const std::string dir = test::make_temp_dir("load-ok");
    const at::Tensor w    = torch::arange(12, torch::kFloat).reshape({3, 4}).to(torch::kBFloat16);
    const at::Tensor b    = torch::tensor({1.5f, -2.f, 3.f}, torch::kBFloat16);
    const at::Tensor s    = torch::tensor({7.f, 8.f});
    write_safetensors(dir + "/model.safetensors",
                      {{"m.linear.weight", DType::BF16, {3, 4}, w.data_ptr(), 24},
                       {"m.linear.bias", DType::BF16, {3}, b.data_ptr(), 6},
                       {"m.scale", DType::F32, {2}, s.data_ptr(), 8},
                       {"m.rotary.inv_freq", DType::F32, {2}, s.data_ptr(), 8}});
    Checkpoint ckpt = Checkpoint::open(dir);
    Tiny tiny;
    LoadReport report(ckpt);
    report.ignore("*.inv_freq");
    report.load_module(*tiny, "m.");
    EXPECT_NO_THROW(report.finish("tiny"));
    EXPECT_EQ(tiny->linear->weight.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(tiny->linear->weight, w.to(torch::kFloat)));
    EXPECT_TRUE(torch::equal(tiny->linear->bias, b.to(torch::kFloat)));
    EXPECT_TRUE(torch::equal(tiny->scale, s));
    EXPECT_EQ(report.ignored_keys(), std::vector<std::string>{"m.rotary.inv_freq"});
}

TEST(LoadReport, SharesStoredTensorsOfTheSameDtypeWithTheMapping) {
    // The lean load: f32 tensors stored as f32 become views of the mapped file (no copy); the bf16
    // ones still convert by copying. Writing to a shared parameter copies that page only: the
    // file on disk keeps its bytes.
    const std::string dir = test::make_temp_dir("load-shared");
    const at::Tensor w    = torch::arange(12, torch::kFloat).reshape({3, 4});
    const at::Tensor b    = torch::tensor({1.5f, -2.f, 3.f}, torch::kBFloat16);
    const at::Tensor s    = torch::tensor({7.f, 8.f});
    write_safetensors(dir + "/model.safetensors",
                      {{"m.linear.weight", DType::F32, {3, 4}, w.data_ptr(), 48},
                       {"m.linear.bias", DType::BF16, {3}, b.data_ptr(), 6},
                       {"m.scale", DType::F32, {2}, s.data_ptr(), 8}});
    const std::string before = read_file(dir + "/model.safetensors");
    Checkpoint ckpt          = Checkpoint::open(dir);
    Tiny tiny;
    LoadReport report(ckpt);
    report.share_stored_tensors(true);
    report.load_module(*tiny, "m.");
    EXPECT_NO_THROW(report.finish("tiny"));
    EXPECT_EQ(report.shared_bytes(), 48 + 8);
    EXPECT_EQ(tiny->linear->weight.data_ptr(), ckpt.tensor("m.linear.weight").data_ptr());
    EXPECT_EQ(tiny->scale.data_ptr(), ckpt.tensor("m.scale").data_ptr());
    EXPECT_NE(tiny->linear->bias.data_ptr(), ckpt.tensor("m.linear.bias").data_ptr());
    EXPECT_TRUE(torch::equal(tiny->linear->weight, w));
    EXPECT_TRUE(torch::equal(tiny->linear->bias, b.to(torch::kFloat)));
    {
        torch::NoGradGuard no_grad;
        tiny->linear->weight.add_(1); // copy-on-write page, not a fault
    }
    EXPECT_TRUE(torch::equal(tiny->linear->weight, w + 1));
    EXPECT_EQ(read_file(dir + "/model.safetensors"), before);
}

// A converting load reads the stored tensor through the mapping and keeps only its copy: the file
// pages it read are given back (GLaMM's SAM is stored in f32: 2.6 GB of such pages at 7B in bf16).
TEST(LoadReport, ConvertingGivesBackTheFilePagesItRead) {
    const std::string dir   = test::make_temp_dir("load-release");
    constexpr int64_t kRows = 2048, kCols = 2048; // 8 MiB of bf16
    const at::Tensor w = torch::randn({kRows, kCols}).to(torch::kBFloat16);
    write_safetensors(dir + "/model.safetensors",
                      {{"m.linear.weight", DType::BF16, {kRows, kCols}, w.data_ptr(), w.nbytes()}},
                      {{"format", "pt"}});
    Checkpoint ckpt = Checkpoint::open(dir);
    struct Holder : torch::nn::Module {
        at::Tensor weight = register_parameter("weight", torch::zeros({kRows, kCols}));
    } holder;
    (void)torch::ones({4}, torch::kBFloat16).to(torch::kFloat); // the conversion's code paged in
    const long before = test::resident_file_kb();
    LoadReport report(ckpt);
    report.load_module(holder, "m.linear.");
    const long grew = test::resident_file_kb() - before;
    EXPECT_TRUE(torch::equal(holder.weight, w.to(torch::kFloat)));
    // Kept, the read would leave all 8192 kB resident.
    EXPECT_LT(grew, static_cast<long>(w.nbytes() / 1024 / 4))
        << "RssFile grew by " << grew << " kB";
}

TEST(LoadReport, ListsMissingMisShapedAndUnexpectedKeys) {
    const std::string dir = test::make_temp_dir("load-bad");
    const float w[8] = {}, x[1] = {};
    write_safetensors(dir + "/model.safetensors",
                      {{"m.linear.weight", DType::F32, {2, 4}, w, sizeof w},
                       {"m.extra", DType::F32, {1}, x, sizeof x},
                       {"m.scale", DType::F32, {2}, w, 8}});
    Checkpoint ckpt = Checkpoint::open(dir);
    Tiny tiny;
    LoadReport report(ckpt);
    report.load_module(*tiny, "m.");
    try {
        report.finish("tiny model");
        ADD_FAILURE() << "finish() accepted a bad checkpoint";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_HAS(msg, "tiny model does not match the model its config describes:");
        EXPECT_HAS(msg, "missing keys (1):\n    m.linear.bias");
        EXPECT_HAS(msg, "unexpected keys (1):\n    m.extra");
        EXPECT_HAS(msg, "mis-shaped keys (1):\n    m.linear.weight: expected [3, 4], got [2, 4]");
    }
    // Optional keys are not missing; consumed keys are not unexpected.
    LoadReport lenient(ckpt);
    lenient.load_module(*tiny, "m.", [](const std::string& name) { return name == "linear.bias"; });
    lenient.consume("m.extra");
    try {
        lenient.finish("tiny");
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find("missing"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find("unexpected"), std::string::npos) << e.what();
        EXPECT_HAS(e.what(), "mis-shaped keys (1)");
    }
}

// ---- the golden tiny release

TEST(Checkpoint, GoldenTinyRelease) {
    Checkpoint ckpt = Checkpoint::open(test::tiny_model_dir());
    const auto index =
        nlohmann::json::parse(read_file(test::tiny_model_dir() + "/model.safetensors.index.json"));
    EXPECT_EQ(ckpt.size(), index["weight_map"].size());
    EXPECT_EQ(ckpt.size(), 274u);
    EXPECT_EQ(ckpt.files().size(), 3u);
    EXPECT_EQ(ckpt.format(), "safetensors");
    EXPECT_EQ(ckpt.stored("lm_head.weight").shape, (std::vector<int64_t>{519, 160}));
    EXPECT_EQ(ckpt.stored("lm_head.weight").dtype, DType::BF16);
    EXPECT_EQ(ckpt.stored("model.embed_tokens.weight").shape, (std::vector<int64_t>{519, 160}));
    EXPECT_EQ(ckpt.stored("model.norm.weight").shape, (std::vector<int64_t>{160}));
    EXPECT_EQ(ckpt.stored("model.layers.1.mlp.down_proj.weight").shape,
              (std::vector<int64_t>{160, 320}));
    EXPECT_EQ(ckpt.stored("model.region_encoder.roi_align.flatten_linear.weight").shape,
              (std::vector<int64_t>{128, 25088}));
    EXPECT_EQ(ckpt.stored("model.text_hidden_fcs.0.2.weight").shape,
              (std::vector<int64_t>{32, 160}));
    EXPECT_EQ(ckpt.stored("model.grounding_encoder.image_encoder.pos_embed").shape,
              (std::vector<int64_t>{1, 64, 64, 64}));
    for (const auto& [name, shard] : index["weight_map"].items())
        EXPECT_TRUE(ckpt.contains(name)) << name;
    const at::Tensor head = ckpt.tensor("lm_head.weight");
    EXPECT_EQ(head.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(head.isfinite().all().item<bool>());
}

// --dtype: floating tensors rounded to the target (mixed bf16/fp32 release -> f16), integer
// tensors untouched, config.json's torch_dtype rewritten when present.
TEST(Checkpoint, ConvertToAnotherFloatDtype) {
    const std::string dir = test::make_temp_dir("convert-dtype");
    Checkpoint bin        = Checkpoint::open(release_dir());
    ConvertOptions options;
    options.float_dtype = DType::F16;
    convert_checkpoint(bin, dir + "/out", options);
    Checkpoint converted = Checkpoint::open(dir + "/out");
    ASSERT_EQ(converted.names(), bin.names());
    int floating = 0;
    for (const auto& name : bin.names()) {
        const at::Tensor source = bin.tensor(name), result = converted.tensor(name);
        if (at::isFloatingType(source.scalar_type())) {
            ++floating;
            EXPECT_EQ(converted.stored(name).dtype, DType::F16) << name;
            EXPECT_TRUE(torch::equal(result, source.to(at::kHalf))) << name;
        } else {
            EXPECT_EQ(converted.stored(name).dtype, bin.stored(name).dtype) << name;
            EXPECT_TRUE(torch::equal(result, source)) << name;
        }
    }
    EXPECT_GT(floating, 0);
    // The source release says bfloat16.
    EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/out/config.json"))["torch_dtype"], "float16");
}
