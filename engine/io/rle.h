// COCO run-length encoding, bit-compatible with pycocotools' maskApi.c: masks are scanned in
// column-major (Fortran) order, counts alternate starting with a run of zeros, and the compressed
// string form stores each count (minus the count two places back, from the fourth on) as
// 5-bit little-endian groups offset by 48.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glamm {

struct Rle {
    int64_t height = 0;
    int64_t width  = 0;
    std::vector<uint32_t> counts; // alternating runs, first = zeros (possibly 0)

    int64_t area() const;
    // Bounding box [x, y, w, h] as pycocotools rleToBbox computes it.
    std::vector<double> bbox() const;
};

// Encodes a binary mask given row-major [height, width] (non-zero = foreground).
Rle rle_encode(const uint8_t* mask, int64_t height, int64_t width);
// Decodes into a row-major [height, width] 0/1 mask.
std::vector<uint8_t> rle_decode(const Rle& rle);

// The compressed "counts" string (pycocotools rleToString) and back (rleFrString). Throws Error
// on a malformed string or one whose runs do not add up to height * width.
std::string rle_to_string(const Rle& rle);
Rle rle_from_string(const std::string& counts, int64_t height, int64_t width);

// Intersection over union of two masks of the same size; `crowd` as pycocotools (IoU is then
// intersection / area(a)). Two empty masks give 0 as pycocotools does.
double rle_iou(const Rle& a, const Rle& b, bool crowd = false);
// Union (intersect = false) or intersection of masks of the same size.
Rle rle_merge(const std::vector<Rle>& rles, bool intersect);

// Rasterises one polygon [x0, y0, x1, y1, ...] (pixel coordinates, pixel centres at integers)
// as pycocotools rleFrPoly does: vertices scaled by 5 and rounded, edges walked densely, the
// boundary's x-crossings of pixel centres turned into runs. Bit-exact with maskApi.c.
Rle rle_from_polygon(const std::vector<double>& xy, int64_t height, int64_t width);
// A COCO "segmentation" list of polygons: each rasterised, then their union (annToRLE).
Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t height,
                      int64_t width);

} // namespace glamm
