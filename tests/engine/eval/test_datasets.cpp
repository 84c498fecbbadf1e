// Dataset readers on small hand-written files: the plain-data pickle reader (protocol 0 and 2
// pickles of a REFER refs list, as Python's pickle.dumps writes them), the REFER layout, synth
// refseg/regcap/GCG folders, GranD-f file pairs, --limit, and scoring the restricted GT.
#include "core/error.h"
#include "eval/benchmark.h"
#include "eval/datasets.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace glamm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// pickle.dumps(REFS, protocol=0) of
// REFS = [{'ref_id': 0, 'ann_id': 11, 'image_id': 5, 'split': 'val', 'sentences':
//          [{'sent': 'the red circle', 'sent_id': 100}, {'sent': 'left thing', 'sent_id': 101}],
//          'category_id': 1},
//         {'ref_id': 1, 'ann_id': 12, 'image_id': 5, 'split': 'testA', 'sentences':
//          [{'sent': 'blue square', 'sent_id': 102}], 'category_id': 1}]
// (memo GETs share the key strings: g10 = 'sent', g12 = 'sent_id').
const std::string kRefsProtocol0 =
    "(lp0\n(dp1\nVref_id\np2\nI0\nsVann_id\np3\nI11\nsVimage_id\np4\nI5\nsVsplit\np5\nVval\np6\n"
    "sVsentences\np7\n(lp8\n(dp9\nVsent\np10\nVthe red circle\np11\nsVsent_id\np12\nI100\nsa(dp13\n"
    "g10\nVleft "
    "thing\np14\nsg12\nI101\nsasVcategory_id\np15\nI1\nsa(dp16\ng2\nI1\nsg3\nI12\nsg4\nI5\n"
    "sg5\nVtestA\np17\nsg7\n(lp18\n(dp19\ng10\nVblue square\np20\nsg12\nI102\nsasg15\nI1\nsa.";

// pickle.dumps(REFS, protocol=2).
const std::string kRefsProtocol2("\x80\x02\x5d\x71\x00\x28\x7d\x71\x01\x28\x58\x06\x00\x00\x00\x72"
                                 "\x65\x66\x5f\x69\x64\x71\x02\x4b"
                                 "\x00\x58\x06\x00\x00\x00\x61\x6e\x6e\x5f\x69\x64\x71\x03\x4b\x0b"
                                 "\x58\x08\x00\x00\x00\x69\x6d\x61"
                                 "\x67\x65\x5f\x69\x64\x71\x04\x4b\x05\x58\x05\x00\x00\x00\x73\x70"
                                 "\x6c\x69\x74\x71\x05\x58\x03\x00"
                                 "\x00\x00\x76\x61\x6c\x71\x06\x58\x09\x00\x00\x00\x73\x65\x6e\x74"
                                 "\x65\x6e\x63\x65\x73\x71\x07\x5d"
                                 "\x71\x08\x28\x7d\x71\x09\x28\x58\x04\x00\x00\x00\x73\x65\x6e\x74"
                                 "\x71\x0a\x58\x0e\x00\x00\x00\x74"
                                 "\x68\x65\x20\x72\x65\x64\x20\x63\x69\x72\x63\x6c\x65\x71\x0b\x58"
                                 "\x07\x00\x00\x00\x73\x65\x6e\x74"
                                 "\x5f\x69\x64\x71\x0c\x4b\x64\x75\x7d\x71\x0d\x28\x68\x0a\x58\x0a"
                                 "\x00\x00\x00\x6c\x65\x66\x74\x20"
                                 "\x74\x68\x69\x6e\x67\x71\x0e\x68\x0c\x4b\x65\x75\x65\x58\x0b\x00"
                                 "\x00\x00\x63\x61\x74\x65\x67\x6f"
                                 "\x72\x79\x5f\x69\x64\x71\x0f\x4b\x01\x75\x7d\x71\x10\x28\x68\x02"
                                 "\x4b\x01\x68\x03\x4b\x0c\x68\x04"
                                 "\x4b\x05\x68\x05\x58\x05\x00\x00\x00\x74\x65\x73\x74\x41\x71\x11"
                                 "\x68\x07\x5d\x71\x12\x7d\x71\x13"
                                 "\x28\x68\x0a\x58\x0b\x00\x00\x00\x62\x6c\x75\x65\x20\x73\x71\x75"
                                 "\x61\x72\x65\x71\x14\x68\x0c\x4b"
                                 "\x66\x75\x61\x68\x0f\x4b\x01\x75\x65\x2e",
                                 274);

const json kRefsJson = json::parse(R"([
  {"ref_id": 0, "ann_id": 11, "image_id": 5, "split": "val", "category_id": 1,
   "sentences": [{"sent": "the red circle", "sent_id": 100}, {"sent": "left thing", "sent_id": 101}]},
  {"ref_id": 1, "ann_id": 12, "image_id": 5, "split": "testA", "category_id": 1,
   "sentences": [{"sent": "blue square", "sent_id": 102}]}])");

void write_json(const fs::path& p, const json& j) {
    test::write_bytes(p.string(), j.dump());
}

} // namespace

TEST(PlainPickle, ReadsRefsListInProtocols0And2) {
    EXPECT_EQ(eval::read_plain_pickle(kRefsProtocol0, "p0"), kRefsJson);
    EXPECT_EQ(eval::read_plain_pickle(kRefsProtocol2, "p2"), kRefsJson);
}

TEST(PlainPickle, ScalarsStringsAndSharedContainers) {
    // Python 2 protocol 0: S'...' with an escaped quote, I01 (True), 5L, F1.5, N.
    EXPECT_EQ(eval::read_plain_pickle("(lp0\nS'a\\'b'\np1\naI01\naL5L\naF1.5\naNa.", "p"),
              json::parse(R"(["a'b", true, 5, 1.5, null])"));
    // pickle.dumps([x, x, (None, True, -3, 70000, 2**40)], protocol=2) with x = [1.5]: the
    // memoised list is referenced twice; J, LONG1 and TUPLE via MARK.
    const std::string p2("\x80\x02\x5d\x71\x00\x28\x5d\x71\x01\x47\x3f\xf8\x00\x00\x00\x00\x00\x00"
                         "\x61\x68\x01\x28\x4e\x88\x4a\xfd\xff\xff\xff\x4a\x70\x11\x01\x00\x8a\x06"
                         "\x00\x00\x00\x00\x00\x01\x74\x71\x02\x65\x2e",
                         47);
    EXPECT_EQ(eval::read_plain_pickle(p2, "p"),
              json::parse(R"([[1.5], [1.5], [null, true, -3, 70000, 1099511627776]])"));
}

TEST(PlainPickle, RefusesCodeAndTruncation) {
    // GLOBAL os.system + REDUCE: the classic payload.
    test::expect_error([] { eval::read_plain_pickle("cos\nsystem\n(S'echo hi'\ntR.", "evil.p"); },
                       {"evil.p", "outside plain data"});
    EXPECT_THROW(eval::read_plain_pickle(kRefsProtocol2.substr(0, 100), "cut"), Error);
    EXPECT_THROW(eval::read_plain_pickle("", "empty"), Error);
}

TEST(Datasets, ReferLayoutFromPickleOrJson) {
    const fs::path dir = test::make_temp_dir("refer");
    // Image 5 is 4 x 6; ann 11 a polygon (rectangle), ann 12 an uncompressed RLE.
    write_json(dir / "instances.json",
               json::parse(R"({"images": [{"id": 5, "file_name": "COCO_train2014_000000000005.jpg",
                                           "height": 4, "width": 6}],
                               "annotations": [
                                 {"id": 11, "image_id": 5, "segmentation": [[0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5]]},
                                 {"id": 12, "image_id": 5, "segmentation": {"size": [4, 6], "counts": [20, 4]}}],
                               "categories": [{"id": 1, "name": "thing"}]})"));
    test::write_bytes((dir / "refs(unc).p").string(), kRefsProtocol2);
    fs::create_directories(dir / "train2014");
    test::write_bytes((dir / "train2014" / "COCO_train2014_000000000005.jpg").string(), "x");

    eval::DatasetOptions o;
    o.data         = (dir / "refs(unc).p").string();
    o.images       = (dir / "train2014").string();
    const auto val = eval::read_refseg_dataset(o);
    ASSERT_EQ(val.samples.size(), 2u);
    EXPECT_EQ(val.samples[0].sentence, "the red circle");
    EXPECT_EQ(val.samples[0].gt_id, 100);
    EXPECT_EQ(val.samples[1].gt_id, 101);
    EXPECT_EQ(val.samples[0].image_id, "5");
    EXPECT_EQ(val.samples[0].image_path,
              (dir / "train2014" / "COCO_train2014_000000000005.jpg").string());
    ASSERT_EQ(val.gt["annotations"].size(), 2u);
    EXPECT_EQ(val.gt["annotations"][1]["id"], 101);
    EXPECT_EQ(val.gt["images"][0]["height"], 4);

    // The polygon GT scores 1 against its own rasterisation (2 x 2 pixels at rows 1-2, cols 1-2:
    // pixel centres inside [0.5, 2.5]), the other sentence misses with an empty answer.
    Rle square = rle_from_polygons({{0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5}}, 4, 6);
    std::vector<eval::Prediction> preds(1);
    preds[0].image_id = "100";
    preds[0].masks    = {square};
    const json s      = eval::score_refseg({val.gt}, preds);
    // sentence 100: I = U = |square|; sentence 101: empty prediction, I = 0, U = |square|.
    EXPECT_NEAR(s["cIoU"].get<double>(), 0.5, 1e-12);
    EXPECT_NEAR(s["gIoU"].get<double>(), 0.5, 1e-12);
    EXPECT_EQ(s["missing_predictions"], 1);

    // testA picks the second ref (split[-1] in ref split); a JSON copy reads the same; --limit.
    o.split       = "testA";
    const auto tA = eval::read_refseg_dataset(o);
    ASSERT_EQ(tA.samples.size(), 1u);
    EXPECT_EQ(tA.samples[0].sentence, "blue square");
    EXPECT_EQ(tA.gt["annotations"][0]["segmentation"]["counts"], json::parse("[20, 4]"));
    fs::remove(dir / "refs(unc).p");
    write_json(dir / "refs(unc).json", kRefsJson);
    o.data         = dir.string(); // the folder: its only refs file
    o.split        = "val";
    o.limit        = 1;
    const auto one = eval::read_refseg_dataset(o);
    ASSERT_EQ(one.samples.size(), 1u);
    EXPECT_EQ(one.gt["annotations"].size(), 1u);

    // A missing image names the paths it tried.
    o.images = (dir / "nowhere").string();
    EXPECT_THROW(eval::read_refseg_dataset(o), Error);
}

TEST(Datasets, SynthRefsegGroupsByImageAndLimits) {
    const fs::path dir = test::make_temp_dir("synth-refseg");
    fs::create_directories(dir / "images");
    test::write_bytes((dir / "images" / "a.png").string(), "x");
    test::write_bytes((dir / "images" / "b.png").string(), "x");
    const json rle = {{"size", {2, 2}}, {"counts", {0, 4}}};
    write_json(
        dir / "refseg.json",
        {{"info", {{"generator", "glamm synth"}}},
         {"images",
          {{{"id", "a"}, {"file_name", "images/a.png"}, {"height", 2}, {"width", 2}},
           {{"id", "b"}, {"file_name", "images/b.png"}, {"height", 2}, {"width", 2}}}},
         {"annotations",
          {{{"id", 1}, {"image_id", "a"}, {"sentence", "the red star"}, {"segmentation", rle}},
           {{"id", 2}, {"image_id", "b"}, {"sentence", "the blue ring"}, {"segmentation", rle}},
           {{"id", 3}, {"image_id", "a"}, {"sentence", "the big star"}, {"segmentation", rle}}}}});
    eval::DatasetOptions o;
    o.data         = dir.string();
    const auto all = eval::read_refseg_dataset(o);
    ASSERT_EQ(all.samples.size(), 3u);
    EXPECT_EQ(all.samples[0].gt_id, 1);
    EXPECT_EQ(all.samples[1].gt_id, 3); // image a's expressions together
    EXPECT_EQ(all.samples[2].gt_id, 2);
    EXPECT_EQ(all.samples[2].image_path, (dir / "images/b.png").string());
    o.limit        = 2;
    const auto two = eval::read_refseg_dataset(o);
    ASSERT_EQ(two.samples.size(), 2u);
    EXPECT_EQ(two.gt["annotations"].size(), 2u);
    EXPECT_EQ(two.gt["images"].size(), 1u);
}

TEST(Datasets, GrandfPairAndSynthGcg) {
    const fs::path dir = test::make_temp_dir("grandf");
    fs::create_directories(dir / "imgs");
    test::write_bytes((dir / "imgs" / "x1.jpg").string(), "x");
    test::write_bytes((dir / "imgs" / "x2.jpg").string(), "x");
    const json rle = {{"size", {2, 2}}, {"counts", {1, 3}}};
    // Caption GT lists x2 first: its order wins (evaluate.py reads the caption GT's images).
    write_json(dir / "val_gcg_coco_caption_gt.json",
               {{"images",
                 {{{"id", "x2"}, {"file_name", "x2.jpg"}, {"height", 2}, {"width", 2}},
                  {{"id", "x1"}, {"file_name", "x1.jpg"}, {"height", 2}, {"width", 2}}}},
                {"annotations",
                 {{{"image_id", "x1"}, {"caption", "a cat"}, {"labels", {"a cat"}}},
                  {{"image_id", "x2"}, {"caption", "a dog"}, {"labels", {"a dog"}}}}}});
    write_json(dir / "val_gcg_coco_mask_gt.json",
               {{"images",
                 {{{"id", "x1"}, {"file_name", "x1.jpg"}, {"height", 2}, {"width", 2}},
                  {{"id", "x2"}, {"file_name", "x2.jpg"}, {"height", 2}, {"width", 2}}}},
                {"annotations",
                 {{{"id", 1}, {"image_id", "x1"}, {"segmentation", rle}},
                  {{"id", 2}, {"image_id", "x2"}, {"segmentation", rle}}}}});
    eval::DatasetOptions o;
    o.data   = dir.string();
    o.images = (dir / "imgs").string();
    auto all = eval::read_gcg_dataset(o);
    ASSERT_EQ(all.samples.size(), 2u);
    EXPECT_EQ(all.samples[0].image_id, "x2");
    EXPECT_EQ(all.samples[0].image_path, (dir / "imgs" / "x2.jpg").string());
    EXPECT_TRUE(all.samples[0].gcg_answer.empty());
    ASSERT_EQ(all.gt.size(), 2u);

    // The mask file names its caption partner; --limit keeps x2 only, in both documents.
    o.data   = (dir / "val_gcg_coco_mask_gt.json").string();
    o.limit  = 1;
    auto one = eval::read_gcg_dataset(o);
    ASSERT_EQ(one.samples.size(), 1u);
    EXPECT_EQ(one.samples[0].image_id, "x2");
    for (const auto& d : one.gt) {
        ASSERT_EQ(d["images"].size(), 1u);
        for (const auto& a : d["annotations"]) EXPECT_EQ(a["image_id"], "x2");
    }
    // Scoring the restricted GT sees one image.
    EXPECT_EQ(eval::score_gcg(one.gt, {}, eval::lexical_similarity, "lexical", {})["images"], 1);

    // A synth folder: annotations.json, file names relative to it, gcg_caption kept, scenes
    // dropped.
    const fs::path syn = test::make_temp_dir("synth-gcg");
    fs::create_directories(syn / "images");
    test::write_bytes((syn / "images" / "s0.png").string(), "x");
    write_json(
        syn / "annotations.json",
        {{"info", {{"generator", "glamm synth"}}},
         {"images", {{{"id", "s0"}, {"file_name", "images/s0.png"}, {"height", 2}, {"width", 2}}}},
         {"annotations",
          {{{"id", 1}, {"image_id", "s0"}, {"segmentation", rle}},
           {{"image_id", "s0"},
            {"caption", "a red star"},
            {"labels", {"a red star"}},
            {"gcg_caption", "<p> a red star </p> [SEG]"}}}},
         {"scenes", json::array({{{"image_id", "s0"}}})}});
    eval::DatasetOptions so;
    so.data        = syn.string();
    const auto sds = eval::read_gcg_dataset(so);
    ASSERT_EQ(sds.samples.size(), 1u);
    EXPECT_EQ(sds.samples[0].image_path, (syn / "images/s0.png").string());
    EXPECT_EQ(sds.samples[0].gcg_answer, "<p> a red star </p> [SEG]");
    EXPECT_FALSE(sds.gt[0].contains("scenes"));
}

TEST(Datasets, RegionCaptionBoxes) {
    const fs::path dir = test::make_temp_dir("regcap");
    test::write_bytes((dir / "c.jpg").string(), "x");
    // COCO style (RefCOCOg / VG): bbox [x, y, w, h] -> [x1, y1, x2, y2].
    write_json(
        dir / "finetune_refcocog_val_with_mask.json",
        json::parse(R"({"images": [{"id": 7, "file_name": "c.jpg", "height": 50, "width": 60},
                                          {"id": 8, "file_name": "c.jpg", "height": 50, "width": 60}],
                               "annotations": [{"id": 7, "image_id": 7, "bbox": [10, 20, 5, 6], "caption": "a man"},
                                               {"id": 8, "image_id": 8, "bbox": [0, 0, 60, 50], "caption": "all"}]})"));
    eval::DatasetOptions o;
    o.data       = (dir / "finetune_refcocog_val_with_mask.json").string();
    const auto c = eval::read_regcap_dataset(o);
    ASSERT_EQ(c.samples.size(), 2u);
    EXPECT_EQ(c.samples[0].image_id, "7");
    EXPECT_EQ(c.samples[0].box, (std::array<double, 4>{10, 20, 15, 26}));
    EXPECT_EQ(c.samples[1].box, (std::array<double, 4>{0, 0, 60, 50}));
    o.limit          = 1;
    const auto first = eval::read_regcap_dataset(o);
    EXPECT_EQ(first.samples.size(), 1u);
    EXPECT_EQ(first.gt["annotations"].size(), 1u);

    // The reference reads coco.anns[image_id]: the annotation with the image's id, even when
    // another annotation on the image comes first.
    write_json(
        dir / "two.json",
        json::parse(R"({"images": [{"id": 7, "file_name": "c.jpg", "height": 50, "width": 60}],
                               "annotations": [{"id": 9, "image_id": 7, "bbox": [1, 1, 2, 2], "caption": "other"},
                                               {"id": 7, "image_id": 7, "bbox": [10, 20, 5, 6], "caption": "a man"}]})"));
    o.data          = (dir / "two.json").string();
    o.limit         = -1;
    const auto pick = eval::read_regcap_dataset(o);
    ASSERT_EQ(pick.samples.size(), 1u);
    EXPECT_EQ(pick.samples[0].box, (std::array<double, 4>{10, 20, 15, 26}));

    // glamm synth regcap.json: already [x1, y1, x2, y2].
    const fs::path syn = test::make_temp_dir("synth-regcap");
    fs::create_directories(syn / "images");
    test::write_bytes((syn / "images" / "s.png").string(), "x");
    write_json(syn / "regcap.json", json::parse(R"({"info": {"generator": "glamm synth"},
                               "images": [{"id": "s_obj1", "file_name": "images/s.png", "height": 9, "width": 9,
                                           "bbox": [1, 2, 3, 4]}],
                               "annotations": [{"id": 1, "image_id": "s_obj1", "caption": "a dot", "bbox": [1, 2, 3, 4]}]})"));
    eval::DatasetOptions so;
    so.data      = syn.string();
    const auto s = eval::read_regcap_dataset(so);
    ASSERT_EQ(s.samples.size(), 1u);
    EXPECT_EQ(s.samples[0].box, (std::array<double, 4>{1, 2, 3, 4}));
    EXPECT_EQ(s.samples[0].image_path, (syn / "images/s.png").string());
}
