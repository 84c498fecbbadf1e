#include "eval/refseg_metrics.h"

#include "core/error.h"
#include "eval/numpy_math.h"

namespace glamm::eval {

// ref: mbzuai-oryx/groundingLMM eval/referring_seg/infer_and_evaluate.py (intersectionAndUnionGPU
// per mask, acc_iou with 1.0 for an empty union, cIoU from the summed meters)

void RefsegAccumulator::add(const Rle& pred, const Rle& gt) {
    if (pred.height != gt.height || pred.width != gt.width)
        fail("refseg: prediction ", pred.height, "x", pred.width, " and ground truth ", gt.height,
             "x", gt.width, " differ in size");
    const int64_t inter = rle_merge({pred, gt}, true).area();
    const int64_t uni   = pred.area() + gt.area() - inter;
    inter_ += inter;
    union_ += uni;
    ious_.push_back(uni == 0 ? 1.0 : double(inter) / double(uni));
}

RefsegScores RefsegAccumulator::finish() const {
    RefsegScores s;
    s.pairs        = int64_t(ious_.size());
    s.intersection = inter_;
    s.union_       = union_;
    s.ciou         = union_ > 0 ? double(inter_) / double(union_) : 0.0;
    s.giou         = ious_.empty() ? 0.0 : numpy_mean(ious_);
    return s;
}

} // namespace glamm::eval
