// Benchmark dataset readers: what `glamm eval gcg|refseg|regcap` runs the model on, and the
// ground truth (in the shape score_gcg/score_refseg/score_regcap read) restricted to it.
//   GCG:    GranD-f val/test_gcg_coco_{mask,caption}_gt.json + an images folder, or a
//           `glamm synth` folder (annotations.json + images/).
//   refseg: RefCOCO/+/g as the REFER API reads them (instances.json + refs(unc|umd|google).p,
//           or that refs list converted to JSON), or a synth refseg.json.
//   regcap: COCO-style region caption files (RefCOCOg finetune_refcocog_val_with_mask.json,
//           VG test_caption.json: one "image" per region, bbox [x, y, w, h] + caption), or a
//           synth regcap.json (bbox [x1, y1, x2, y2]).
// docs/evaluation.md describes the layouts.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace glamm::eval {

struct DatasetOptions {
    std::string data;          // a file or a folder (see each reader)
    std::string images;        // image folder; empty: derived from `data`
    std::string split = "val"; // GranD-f: val|test; REFER: train|val|test|testA|testB|testC
    int64_t limit     = -1;    // keep the first N samples (< 0: all)
};

struct GcgSample {
    std::string image_id;
    std::string image_path;
    std::string gcg_answer; // the GT grounded caption ("<p> x </p> [SEG] ..."), when the GT has one
};
struct GcgDataset {
    std::vector<nlohmann::json> gt; // ground-truth documents, restricted to `samples`' images
    std::vector<GcgSample> samples; // caption GT "images" order
};
// `data`: a folder with annotations.json (synth; images resolved from its folder), a folder with
// {split}_gcg_coco_caption_gt.json and {split}_gcg_coco_mask_gt.json, or one of those files
// (its partner beside it is read too) or any single GT file holding both kinds of annotation.
GcgDataset read_gcg_dataset(const DatasetOptions& options);

struct RefsegSample {
    std::string image_id;
    std::string image_path;
    std::string sentence;
    int64_t gt_id = 0; // id of the GT annotation holding the target mask (prediction "id")
};
struct RefsegDataset {
    nlohmann::json gt;                 // {images, annotations: [{id, image_id, segmentation}]}
    std::vector<RefsegSample> samples; // grouped by image (first appearance), file order within
};
// `data`: a synth refseg.json (or its folder); a REFER refs file (refs(unc).p pickle or a JSON
// list of the same refs) with instances.json beside it; or a folder holding instances.json and
// exactly one refs(*).p / refs(*).json. One sample per sentence of every ref of `split`, whose
// GT id is the sentence's sent_id and whose mask is the ref's annotation.
RefsegDataset read_refseg_dataset(const DatasetOptions& options);

struct RegcapSample {
    std::string image_id; // the region's "image" id (the prediction's image_id)
    std::string image_path;
    std::array<double, 4> box{}; // x1, y1, x2, y2 in image pixels
};
struct RegcapDataset {
    nlohmann::json gt; // the COCO caption document restricted to `samples`
    std::vector<RegcapSample> samples;
};
// `data`: a COCO region caption file (or a folder holding regcap.json). Each image entry is one
// region; its box is the bbox of the annotation whose id is the image's id, as the reference reads
// it, else of the first annotation on the image (COCO [x, y, w, h]; [x1, y1, x2, y2] in files
// written by `glamm synth`).
RegcapDataset read_regcap_dataset(const DatasetOptions& options);

// A plain-data Python pickle (protocols 0-5: None, bools, ints, floats, str/bytes, list, tuple,
// dict; no globals, no object construction) as JSON. Tuples become arrays, non-string dict keys
// their JSON text, bytes strings are taken as UTF-8. Throws Error naming `where` and the byte
// offset for anything else (e.g. a pickle that would run code).
nlohmann::json read_plain_pickle(const std::string& bytes, const std::string& where);

} // namespace glamm::eval
