// Referring-segmentation metrics (GLaMM eval/referring_seg/infer_and_evaluate.py): cIoU = ΣI / ΣU
// over all (prediction, ground truth) pairs; gIoU = mean per-pair IoU, a pair whose union is
// empty counting 1.0.
#pragma once

#include "io/rle.h"

#include <cstdint>
#include <vector>

namespace glamm::eval {

struct RefsegScores {
    double ciou          = 0;
    double giou          = 0;
    int64_t pairs        = 0;
    int64_t intersection = 0; // Σ I
    int64_t union_       = 0; // Σ U
};

// Adds pairs one by one; finish() gives the scores (0 for both when no pair was added).
class RefsegAccumulator {
public:
    // Throws Error for masks of different sizes.
    void add(const Rle& pred, const Rle& gt);
    RefsegScores finish() const;

private:
    int64_t inter_ = 0, union_ = 0;
    std::vector<double> ious_;
};

} // namespace glamm::eval
