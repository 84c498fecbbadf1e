// Mask AP as pycocotools COCOeval(iouType="segm") computes it: per image and category greedy
// matching at IoU thresholds .50:.05:.95 (T = 10), 101 recall points (R), area ranges
// all/small/medium/large (A = 4), maxDets 100, interpolated precision with the monotone envelope.
#pragma once

#include "io/rle.h"

#include <cstdint>
#include <string>
#include <vector>

namespace glamm::eval {

struct CocoGt {
    int64_t id = 0;       // annotation id (a match stores it; pycocotools treats 0 as "none")
    std::string image_id; // image ids as strings; the caller gives their order
    int64_t category_id = 1;
    Rle segmentation;
    double area  = 0; // the annotation's "area" field (COCO GT is not recomputed)
    bool iscrowd = false;
};

struct CocoDt {
    int64_t id = 0; // loadRes numbers results 1, 2, ... in file order
    std::string image_id;
    int64_t category_id = 1;
    Rle segmentation;
    double score = 1.0; // area is the mask's area (loadRes)
};

struct CocoEvalParams {
    // Evaluated images in pycocotools order (sorted(cocoGt.getImgIds())); this order breaks ties
    // between equal scores of different images.
    std::vector<std::string> image_ids;
    std::vector<int64_t> category_ids; // sorted(cocoGt.getCatIds()) or the caller's subset
    int64_t max_dets = 100;
};

// COCOeval.summarize()'s first entries for the segm task (maxDets 100); -1 where pycocotools
// prints -1 (no ground truth in the range).
struct CocoEvalResult {
    double ap        = -1; // IoU .50:.95, area all
    double ap50      = -1;
    double ap75      = -1;
    double ap_small  = -1;
    double ap_medium = -1;
    double ap_large  = -1;
    double ar100     = -1; // mean recall, area all, maxDets 100
    // precision[t][r][k] for area "all", maxDets 100 (eval['precision'][..., 0, -1]).
    std::vector<std::vector<std::vector<double>>> precision;
};

// IoU thresholds as np.linspace(.5, .95, 10) and recall points as np.linspace(0, 1, 101).
std::vector<double> coco_iou_thresholds();
std::vector<double> coco_recall_thresholds();

CocoEvalResult coco_segm_eval(const std::vector<CocoGt>& gts, const std::vector<CocoDt>& dts,
                              const CocoEvalParams& params);

} // namespace glamm::eval
