#include "io/result_writer.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/rle.h"

#include <nlohmann/json.hpp>
#ifdef GLAMM_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#endif

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace glamm {

std::array<uint8_t, 3> mask_color(size_t index) {
    // Kelly's colours of maximum contrast (minus white/black), then a few extra hues.
    static const std::array<std::array<uint8_t, 3>, 20> kPalette = {{
        {230, 25, 75},   {60, 180, 75},   {0, 130, 200},   {255, 225, 25},  {245, 130, 48},
        {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},  {250, 190, 212},
        {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200}, {128, 0, 0},
        {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},     {128, 128, 128},
    }};
    return kPalette[index % kPalette.size()];
}

std::string result_json(const GroundedAnswer& answer, const std::string& model_name) {
    nlohmann::ordered_json j;
    j["text"]     = answer.text;
    j["raw_text"] = answer.raw_text;
    j["phrases"]  = nlohmann::json::array();
    for (const auto& p : answer.phrases)
        j["phrases"].push_back(
            {{"text", p.text}, {"begin", p.begin}, {"end", p.end}, {"mask", p.mask}});
    j["masks"] = nlohmann::json::array();
    for (const auto& m : answer.masks) {
        const Rle rle = rle_encode(m.data.data(), m.height, m.width);
        j["masks"].push_back(
            {{"size", {m.height, m.width}}, {"counts", rle_to_string(rle)}, {"score", m.score}});
    }
    j["boxes"] = nlohmann::json::array();
    for (const auto& b : answer.boxes) j["boxes"].push_back({b.x1, b.y1, b.x2, b.y2});
    j["model"]       = model_name;
    const Timings& t = answer.timings;
    j["timings"]     = {{"preprocess_ms", t.preprocess_ms},
                        {"clip_ms", t.clip_ms},
                        {"sam_encoder_ms", t.sam_encoder_ms},
                        {"region_ms", t.region_ms},
                        {"prefill_ms", t.prefill_ms},
                        {"decode_ms", t.decode_ms},
                        {"mask_decoder_ms", t.mask_decoder_ms},
                        {"postprocess_ms", t.postprocess_ms},
                        {"total_ms", t.total_ms},
                        {"embedding_cache_ms", t.embedding_cache_ms},
                        {"prompt_tokens", t.prompt_tokens},
                        {"generated_tokens", t.generated_tokens}};
    j["cancelled"]   = answer.cancelled;
    return j.dump(2) + "\n";
}

Image render_overlay(const Image& image, const GroundedAnswer& answer) {
    Image out = image;
    // ref: groundingLMM app.py prepare_mask: 0.5 * image + 0.5 * colour from the ORIGINAL image,
    // so later masks overwrite earlier ones in overlaps; truncation to uint8.
    for (size_t k = 0; k < answer.masks.size(); ++k) {
        const Mask& m = answer.masks[k];
        if (m.height != image.height || m.width != image.width) continue;
        const auto color = mask_color(k);
        for (int64_t i = 0; i < m.height * m.width; ++i) {
            if (!m.data[static_cast<size_t>(i)]) continue;
            for (int c = 0; c < 3; ++c)
                out.rgb[static_cast<size_t>(i * 3 + c)] = static_cast<uint8_t>(
                    0.5 * image.rgb[static_cast<size_t>(i * 3 + c)] + 0.5 * color[c]);
        }
    }
#ifdef GLAMM_HAVE_OPENCV // boxes and their numbers (a build without OpenCV draws masks only)
    cv::Mat mat(static_cast<int>(out.height), static_cast<int>(out.width), CV_8UC3, out.rgb.data());
    const int thickness = std::max(2, static_cast<int>(std::min(out.width, out.height) / 200));
    for (size_t i = 0; i < answer.boxes.size(); ++i) {
        const Box& b     = answer.boxes[i];
        const auto color = mask_color(answer.masks.size() + i);
        const cv::Scalar c(color[0], color[1], color[2]);
        cv::rectangle(mat, cv::Point(int(b.x1), int(b.y1)), cv::Point(int(b.x2), int(b.y2)), c,
                      thickness);
        cv::putText(mat, std::to_string(i + 1), cv::Point(int(b.x1) + 4, int(b.y1) + 24),
                    cv::FONT_HERSHEY_SIMPLEX, 0.8, c, 2);
    }
#endif
    return out;
}

std::string labelme_json(const GroundedAnswer& answer, const std::string& image_path, int64_t width,
                         int64_t height) {
    nlohmann::ordered_json j;
    j["version"] = "5.2.1";
    j["flags"]   = nlohmann::json::object();
    j["shapes"]  = nlohmann::json::array();
    for (size_t k = 0; k < answer.masks.size(); ++k) {
        const Mask& m     = answer.masks[k];
        std::string label = "mask " + std::to_string(k);
        for (const auto& p : answer.phrases)
            if (p.mask == static_cast<int>(k)) label = p.text;
#ifndef GLAMM_HAVE_OPENCV
        fail("LabelMe polygons need OpenCV, which this glamm was built without");
#else
        cv::Mat mat(static_cast<int>(m.height), static_cast<int>(m.width), CV_8UC1,
                    const_cast<uint8_t*>(m.data.data()));
        std::vector<std::vector<cv::Point>> contours;
        cv::findContours(mat.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
        for (const auto& contour : contours) {
            if (contour.size() < 3) continue;
            nlohmann::json points = nlohmann::json::array();
            for (const auto& pt : contour) points.push_back({pt.x, pt.y});
            j["shapes"].push_back({{"label", label},
                                   {"points", points},
                                   {"group_id", k},
                                   {"shape_type", "polygon"},
                                   {"flags", nlohmann::json::object()}});
        }
#endif
    }
    j["imagePath"]   = image_path;
    j["imageData"]   = nullptr;
    j["imageHeight"] = height;
    j["imageWidth"]  = width;
    return j.dump(2) + "\n";
}

std::string mask_file_name(size_t index) {
    char name[32];
    std::snprintf(name, sizeof name, "mask_%03zu.png", index);
    return name;
}

namespace {

// An earlier result in the same folder must not survive in part: its masks beyond this answer's
// count, and its labelme.json when this one has none. Only names this writer makes are touched.
void remove_stale_outputs(const std::filesystem::path& base, size_t masks, bool labelme) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> stale;
    for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        const size_t digits    = name.size() - std::min(name.size(), sizeof "mask_.png" - 1);
        if (digits == 0 || digits > 9 || name.rfind("mask_", 0) != 0) continue;
        const std::string number = name.substr(5, digits);
        if (number.find_first_not_of("0123456789") != std::string::npos) continue;
        const size_t index = std::stoul(number);
        if (index >= masks && name == mask_file_name(index)) stale.push_back(it->path());
    }
    if (ec) fail("cannot list ", base.string(), ": ", ec.message());
    if (!labelme && fs::exists(base / "labelme.json")) stale.push_back(base / "labelme.json");
    for (const fs::path& p : stale)
        if (fs::remove(p, ec); ec)
            fail("cannot remove the earlier result's ", p.string(), ": ", ec.message());
}

} // namespace

void write_result(const std::string& dir, const Image& image, const GroundedAnswer& answer,
                  const std::string& model_name, const std::string& image_path, bool labelme) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail("cannot create the output folder ", dir, ": ", ec.message());
    const std::filesystem::path base(dir);
    const Image overlay = render_overlay(image, answer);
    save_png((base / "overlay.png").string(), overlay.rgb.data(), overlay.width, overlay.height, 3);
    for (size_t k = 0; k < answer.masks.size(); ++k) {
        const Mask& m = answer.masks[k];
        std::vector<uint8_t> grey(m.data.size());
        for (size_t i = 0; i < grey.size(); ++i) grey[i] = m.data[i] ? 255 : 0;
        save_png((base / mask_file_name(k)).string(), grey.data(), m.width, m.height, 1);
    }
    if (labelme)
        write_file_atomic((base / "labelme.json").string(),
                          labelme_json(answer, image_path, image.width, image.height));
    remove_stale_outputs(base, answer.masks.size(), labelme);
    // Last: a result.json is only there once its masks are.
    write_file_atomic((base / "result.json").string(), result_json(answer, model_name));
}

} // namespace glamm
