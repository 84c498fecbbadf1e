// Writing a GroundedAnswer: result.json (COCO RLE masks), overlay.png, mask_NNN.png and LabelMe
// JSON. Every file is written to a temporary file and renamed, so a full disk or a crash never
// leaves a half-written result.
#pragma once

#include "session.h"

#include <array>
#include <string>

namespace glamm {

// A fixed palette of 20 distinguishable colours (Kelly's/Glasbey-style); mask i gets colour
// i % 20. The UI uses the same palette so phrases and overlays match everywhere.
std::array<uint8_t, 3> mask_color(size_t index);

// result.json: {"text", "raw_text", "phrases": [{"text","begin","end","mask"}],
// "masks": [{"size": [h, w], "counts": "<COCO compressed RLE>", "score"}], "boxes",
// "model", "timings", "cancelled"}.
std::string result_json(const GroundedAnswer& answer, const std::string& model_name);

// The image with each mask blended at 50% in its colour and the boxes drawn and numbered.
// Returns RGB8 of the image's size.
Image render_overlay(const Image& image, const GroundedAnswer& answer);

// LabelMe JSON: one polygon shape per mask contour, labelled with its phrase.
std::string labelme_json(const GroundedAnswer& answer, const std::string& image_path,
                         int64_t width, int64_t height);

// "mask_NNN.png": the file of mask `index` in a written result.
std::string mask_file_name(size_t index);

// Writes overlay.png, mask_NNN.png (and labelme.json when asked), then result.json, into `dir`
// (created if needed), each file atomically; removes what an earlier result left there that
// this one does not have (masks beyond its count, labelme.json). Throws Error naming the file
// that could not be written or removed.
void write_result(const std::string& dir, const Image& image, const GroundedAnswer& answer,
                  const std::string& model_name, const std::string& image_path = "",
                  bool labelme = false);

} // namespace glamm
