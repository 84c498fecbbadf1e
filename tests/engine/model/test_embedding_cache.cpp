// The on-disk embedding cache on the tiny golden model: a second session reads the encodings
// instead of running CLIP and SAM and gives the same masks to the bit; damaged entries, other
// pixels and an unwritable folder fall back to encoding.
#include "io/image_file.h"
#include "model/embedding_cache.h"
#include "model/glamm_model.h"
#include "session.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace glamm;

namespace {

std::shared_ptr<const Model> tiny_model() {
    static std::shared_ptr<const Model> model = [] {
        ModelOptions options;
        options.model_dir        = test::tiny_model_dir();
        options.vision_tower_dir = test::tiny_clip_dir();
        return Model::load(options);
    }();
    return model;
}

const Image& gcg_image() {
    static const Image image = load_image(test::tiny_case_path("gcg.png"));
    return image;
}

// The golden teacher-forced GCG answer (two [SEG]s): masks depend on CLIP and SAM encodings.
GroundedAnswer score_gcg(Session& session) {
    Request request;
    request.task        = Task::GroundedCaption;
    request.keep_logits = true;
    return session.score(request,
                         "<p> A red circle </p> [SEG] next to <p> a blue square </p> [SEG].");
}

} // namespace

TEST(EmbeddingCache, SecondSessionReadsTheEntryAndAnswersTheSame) {
    const std::string dir = test::make_temp_dir("embedding-cache");
    Session first(tiny_model());
    first.set_embedding_cache(dir);
    first.set_image(gcg_image());
    const GroundedAnswer a = score_gcg(first);
    EXPECT_GT(a.timings.clip_ms, 0.0);
    EXPECT_EQ(a.timings.embedding_cache_ms, 0.0);
    const std::string entry = EmbeddingCache(dir, tiny_model()->impl()).path_for(gcg_image());
    ASSERT_TRUE(fs::exists(entry));

    Session second(tiny_model());
    second.set_embedding_cache(dir);
    second.set_image(gcg_image());
    const GroundedAnswer b = score_gcg(second);
    EXPECT_EQ(b.timings.clip_ms, 0.0);
    EXPECT_EQ(b.timings.sam_encoder_ms, 0.0);
    EXPECT_GT(b.timings.embedding_cache_ms, 0.0);
    ASSERT_EQ(a.masks.size(), 2u);
    ASSERT_EQ(b.masks.size(), a.masks.size());
    for (size_t k = 0; k < a.masks.size(); ++k) {
        EXPECT_EQ(a.masks[k].data, b.masks[k].data) << k;
        EXPECT_EQ(a.masks[k].logits, b.masks[k].logits) << k;
    }
    std::printf("encode %.1f ms (clip %.1f + sam %.1f + preprocess %.1f), cache read %.2f ms\n",
                a.timings.clip_ms + a.timings.sam_encoder_ms + a.timings.preprocess_ms,
                a.timings.clip_ms, a.timings.sam_encoder_ms, a.timings.preprocess_ms,
                b.timings.embedding_cache_ms);
}

TEST(EmbeddingCache, DamagedEntriesOtherPixelsAndUnwritableFoldersFallBack) {
    const std::string dir = test::make_temp_dir("embedding-cache-bad");
    const EmbeddingCache cache(dir, tiny_model()->impl());
    {
        Session s(tiny_model());
        s.set_embedding_cache(dir);
        s.set_image(gcg_image());
    }
    // One changed pixel is another entry.
    Image other = gcg_image();
    other.rgb[0] ^= 1;
    EXPECT_NE(cache.path_for(other), cache.path_for(gcg_image()));
    EXPECT_FALSE(cache.load(other).has_value());

    // A truncated entry is a miss, is deleted, and the next set_image writes it again.
    const std::string entry = cache.path_for(gcg_image());
    fs::resize_file(entry, fs::file_size(entry) / 2);
    EXPECT_FALSE(cache.load(gcg_image()).has_value());
    EXPECT_FALSE(fs::exists(entry));
    Session s(tiny_model());
    s.set_embedding_cache(dir);
    s.set_image(gcg_image());
    EXPECT_TRUE(cache.load(gcg_image()).has_value());

    // A cache "folder" that is a file: set_image still encodes and answers.
    const std::string file = dir + "/not-a-folder";
    std::ofstream(file) << "x";
    Session t(tiny_model());
    t.set_embedding_cache(file);
    t.set_image(gcg_image());
    EXPECT_EQ(score_gcg(t).masks.size(), 2u);
}
