// GLaMM-Shapes scene generator: random scenes from a seed, their GranD-style multi-level
// annotation (objects with attributes, masks and boxes; geometric relations; a grounded dense
// caption in GCG markup; referring expressions; region descriptions) and the dataset writer
// behind `glamm synth` (formats: docs/synth.md). Masks are COCO RLE of [height, width] images.
#pragma once

#include "io/rle.h"
#include "train/scene_render.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace glamm::synth {

// Bumped whenever the same seed would produce different bytes.
constexpr int kGeneratorVersion = 1;
// Objects with less of their shape visible than this (after occlusion) are dropped.
constexpr double kMinVisibleFraction = 0.3;
constexpr int kMaxObjects            = 6;

// Default bounds of a generated image's sides (scene sizes, unrelated to any model width).
constexpr int64_t kDefaultMinSide = 256;

struct SynthOptions {
    uint64_t seed    = 0;
    int64_t count    = 1;
    int64_t min_size = kDefaultMinSide; // shorter image side at least this
    int64_t max_size = 640;             // longer image side at most this
    // Objects drawn per scene: uniform in [min_objects, kMaxObjects] (hidden ones are dropped
    // after drawing, so a scene may show fewer). 1 keeps the stream of every earlier dataset.
    int64_t min_objects = 1;
    // The share of scenes min_objects applies to, picked per scene by its own random stream; the
    // others draw from [1, kMaxObjects] and are the scenes of the same index with min_objects 1.
    // 1 (every scene) keeps the stream of every earlier dataset.
    double min_objects_share = 1.0;
};

// Scene `index` of the dataset with `options.seed`: deterministic in (seed, index, sizes,
// min_objects, min_objects_share).
// Objects that end up less than kMinVisibleFraction visible are already removed.
SceneSpec random_scene(const SynthOptions& options, int64_t index);

// "small" / "medium" / "large" from the shape's area relative to the image area.
std::string size_word(const SceneObject& o, int64_t width, int64_t height);

struct ObjectInfo {
    int id = 0; // 1-based, drawing order
    SceneObject object;
    std::string shape, colour, size, texture;
    std::array<int64_t, 4> bbox{}; // x1, y1, x2, y2 of the visible pixels (x2, y2 exclusive)
    Rle mask;                      // visible pixels
    int64_t area      = 0;         // visible pixels
    int64_t full_area = 0;         // the whole shape's pixels
    double cx = 0, cy = 0;         // centroid of the visible pixels (pixel centres)
};

struct Relation {
    int subject = 0, object = 0; // object ids
    std::string predicate;       // "left of", "right of", "above", "below", "inside",
                                 // "next to", "bigger than"
};

// A grounded phrase of the dense caption: one object or a group ("two blue squares") whose mask
// is the union of its members.
struct GroundedPhrase {
    std::string text;
    std::vector<int> objects;
    Rle mask;
};

struct ReferringExpression {
    std::string text; // "the red star", "the blue square on the left"
    std::vector<int> objects;
    Rle mask;
};

struct RegionDescription {
    int object = 0;
    std::array<int64_t, 4> bbox{}; // x1, y1, x2, y2
    std::string text;              // "a large striped red star"
};

struct SceneAnnotation {
    int64_t width = 0, height = 0;
    std::string background; // "a blue background", "a red and yellow gradient background", ...
    std::vector<ObjectInfo> objects;
    std::vector<Relation> relations;
    std::vector<GroundedPhrase> phrases; // in caption order
    std::string gcg_caption;             // "<p> a red star </p> [SEG] is to the left of ..."
    std::string caption;                 // the same without markup
    std::vector<ReferringExpression> referring;
    std::vector<RegionDescription> regions;
};

// The geometric relations from `a` to `b` (see docs/synth.md for the exact rules), computed
// from the visible pixels' boxes and centroids and the shapes' full areas.
std::vector<std::string> relations_between(const ObjectInfo& a, const ObjectInfo& b);

// Objects (from the owner map), relations, caption, referring expressions and regions.
SceneAnnotation annotate_scene(const SceneSpec& spec, const RenderedScene& rendered);

// Plain caption from GCG markup: "<p> x </p> [SEG]" -> "x".
std::string strip_gcg_markup(const std::string& markup);

// The per-scene JSON record written under "scenes" in annotations.json.
nlohmann::json scene_to_json(const SceneAnnotation& a, const std::string& image_id,
                             const std::string& file_name);

// Scene `index` of the dataset with `options`, rendered and annotated: what `glamm synth` writes
// for that index (and what the trainer draws).
struct GeneratedScene {
    SceneAnnotation annotation;
    Image image;
};
GeneratedScene generate_scene(const SynthOptions& options, int64_t index);

// Whether `prediction` contains, as whole words (any case), the colour and the shape that the
// generated description `truth` names; nullopt when `truth` names no generator colour or no shape.
struct AttributeMatch {
    bool colour = false, shape = false;
};
std::optional<AttributeMatch> match_colour_and_shape(const std::string& truth,
                                                     const std::string& prediction);
// The GLaMM-Shapes region-caption check (issue 7: "names the right colour and shape"): both of
// the above.
std::optional<bool> names_colour_and_shape(const std::string& truth, const std::string& prediction);

struct SynthSummary {
    int64_t images = 0, objects = 0, phrases = 0, referring = 0, regions = 0;
};
// Writes DIR/images/*.png, annotations.json (GranD-f GCG ground truth + "scenes"), refseg.json,
// regcap.json and manifest.json. `progress` (may be empty) is called after each image.
SynthSummary write_synth_dataset(const SynthOptions& options, const std::string& out_dir,
                                 const std::function<void(int64_t done)>& progress = {});

} // namespace glamm::synth
