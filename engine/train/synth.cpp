// GLaMM-Shapes scene generator and GranD-style annotator (docs/synth.md).
#include "train/synth.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

namespace glamm::synth {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kPi = 3.14159265358979323846;

// Deterministic random numbers on every platform: splitmix64 and our own range mapping (the
// standard distributions are implementation-defined).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); } // [0, 1)
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int64_t range(int64_t lo, int64_t hi) { // inclusive
        return lo + int64_t(next() % uint64_t(hi - lo + 1));
    }
    bool chance(double p) { return uniform() < p; }

private:
    uint64_t state_;
};

// Area bands (fraction of the image) the generator draws sizes from, with gaps between them so
// the size word never sits on a boundary; the words are cut in the gaps.
struct SizeBand {
    const char* word;
    double lo, hi;
};
constexpr SizeBand kSizeBands[] = {
    {"small", 0.006, 0.016}, {"medium", 0.025, 0.05}, {"large", 0.075, 0.14}};
constexpr double kSmallBelow  = 0.02;
constexpr double kMediumBelow = 0.062;

// Shape area for radius 1 (see SceneObject::radius), used to turn a target area into a radius.
double unit_area(Shape s, double aspect) {
    switch (s) {
    case Shape::Circle:
        return kPi;
    case Shape::Ring:
        return kPi * (1 - kRingHoleRatio * kRingHoleRatio);
    case Shape::Square:
        return 4;
    case Shape::Rectangle:
        return 4 * aspect;
    case Shape::Triangle:
        return 3 * std::sqrt(3.0) / 4;
    case Shape::Hexagon:
        return 3 * std::sqrt(3.0) / 2;
    case Shape::Star:
        return 5 * kStarInnerRatio * std::sin(kPi / 5);
    case Shape::Cross:
        return 4 * 2 * kCrossArmRatio - 4 * kCrossArmRatio * kCrossArmRatio;
    }
    return 1;
}

// How far the shape reaches from its centre, per unit radius, at any rotation.
double unit_reach(Shape s, double aspect) {
    if (s == Shape::Square || s == Shape::Cross) return std::sqrt(2.0);
    if (s == Shape::Rectangle) return std::sqrt(1 + aspect * aspect);
    return 1;
}

double max_rotation(Shape s) {
    switch (s) {
    case Shape::Circle:
    case Shape::Ring:
        return 0;
    case Shape::Square:
    case Shape::Rectangle:
    case Shape::Cross:
        return 0.4;
    default:
        return 0.5;
    }
}

// Aspect ratios (long : short) of the images.
constexpr double kAspects[] = {1.0, 4.0 / 3, 3.0 / 2, 16.0 / 9};

std::vector<int16_t> owner_map(const SceneSpec& spec) {
    return render_scene(spec).owner;
}

// Removes, one at a time, the least visible object while it is under kMinVisibleFraction.
void drop_hidden_objects(SceneSpec& spec) {
    while (!spec.objects.empty()) {
        const auto owner = owner_map(spec);
        std::vector<int64_t> visible(spec.objects.size(), 0);
        for (const auto k : owner)
            if (k >= 0) ++visible[size_t(k)];
        double worst   = 1;
        size_t worst_i = 0;
        for (size_t i = 0; i < spec.objects.size(); ++i) {
            const double f = double(visible[i]) /
                             double(std::max<int64_t>(shape_pixel_area(spec.objects[i]), 1));
            if (f < worst) worst = f, worst_i = i;
        }
        if (worst >= kMinVisibleFraction) return;
        spec.objects.erase(spec.objects.begin() + int64_t(worst_i));
    }
}

std::string article(const std::string& word) {
    return std::string("aeiou").find(word.front()) != std::string::npos ? "an" : "a";
}

const char* number_word(size_t n) {
    static const char* words[] = {"zero", "one", "two", "three", "four", "five", "six"};
    return n < 7 ? words[n] : "many";
}

std::string join_words(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) {
        if (w.empty()) continue;
        if (!out.empty()) out += ' ';
        out += w;
    }
    return out;
}

std::vector<uint8_t> object_pixels(const RenderedScene& r, int16_t index) {
    std::vector<uint8_t> m(r.owner.size());
    for (size_t i = 0; i < m.size(); ++i) m[i] = r.owner[i] == index ? 1 : 0;
    return m;
}

// A box and centroid over several objects (group phrases), for group-level relations.
ObjectInfo merge_infos(const std::vector<const ObjectInfo*>& members) {
    ObjectInfo g = *members.front();
    if (members.size() == 1) return g;
    double sx = 0, sy = 0;
    g.area = g.full_area = 0;
    std::vector<Rle> masks;
    for (const auto* m : members) {
        g.bbox[0] = std::min(g.bbox[0], m->bbox[0]);
        g.bbox[1] = std::min(g.bbox[1], m->bbox[1]);
        g.bbox[2] = std::max(g.bbox[2], m->bbox[2]);
        g.bbox[3] = std::max(g.bbox[3], m->bbox[3]);
        sx += m->cx * double(m->area);
        sy += m->cy * double(m->area);
        g.area += m->area;
        g.full_area += m->full_area;
        masks.push_back(m->mask);
    }
    g.cx   = sx / double(g.area);
    g.cy   = sy / double(g.area);
    g.mask = rle_merge(masks, false);
    return g;
}

// Where in the image a point lies, as words ("at the top left", "in the centre").
std::string position_words(double x, double y, int64_t w, int64_t h) {
    const int col                  = x < w / 3.0 ? 0 : x < 2 * w / 3.0 ? 1 : 2;
    const int row                  = y < h / 3.0 ? 0 : y < 2 * h / 3.0 ? 1 : 2;
    static const char* table[3][3] = {
        {"at the top left", "at the top", "at the top right"},
        {"on the left", "in the centre", "on the right"},
        {"at the bottom left", "at the bottom", "at the bottom right"}};
    return table[row][col];
}

json rle_json(const Rle& r) {
    return json{{"size", {r.height, r.width}}, {"counts", rle_to_string(r)}};
}

json box_json(const std::array<int64_t, 4>& b) {
    return json::array({b[0], b[1], b[2], b[3]});
}

json coco_box(const Rle& r) {
    const auto b = r.bbox();
    return json::array({b[0], b[1], b[2], b[3]});
}

} // namespace

std::string size_word(const SceneObject& o, int64_t width, int64_t height) {
    const double f = double(shape_pixel_area(o)) / double(width * height);
    return f < kSmallBelow ? "small" : f < kMediumBelow ? "medium" : "large";
}

SceneSpec random_scene(const SynthOptions& options, int64_t index) {
    if (options.min_size < 32 || options.max_size < options.min_size)
        fail("image sizes must satisfy 32 <= min-size <= max-size (got ", options.min_size, ", ",
             options.max_size, ")");
    if (options.min_objects < 1 || options.min_objects > kMaxObjects)
        fail("the least number of objects a scene draws must be in [1, ", kMaxObjects, "] (got ",
             options.min_objects, ")");
    if (!(options.min_objects_share >= 0.0 && options.min_objects_share <= 1.0))
        fail("the share of scenes min-objects applies to must be in [0, 1] (got ",
             options.min_objects_share, ")");
    Rng seeder(options.seed);
    Rng rng(seeder.next() ^ (uint64_t(index) * 0xD1B54A32D192ED03ull));
    // Drawn from a stream of its own, so that the scenes it leaves out are those of min_objects 1
    // and those it keeps those of min_objects alone: `rng` is the same either way.
    int64_t least_objects = options.min_objects;
    if (options.min_objects_share < 1.0) {
        Rng pick(seeder.next() ^ (uint64_t(index) * 0x9E3779B97F4A7C15ull));
        if (!pick.chance(options.min_objects_share)) least_objects = 1;
    }
    SceneSpec spec;

    // Size and aspect ratio: the long side in [min, max], the short one long / aspect.
    const double aspect     = kAspects[rng.range(0, std::size(kAspects) - 1)];
    const int64_t long_side = rng.range(options.min_size, options.max_size);
    const int64_t short_side =
        std::max(options.min_size, int64_t(std::lround(double(long_side) / aspect)));
    const bool portrait = rng.chance(0.5);
    spec.width          = portrait ? short_side : long_side;
    spec.height         = portrait ? long_side : short_side;

    const int ncolours = int(named_colours().size());
    auto& bg           = spec.background;
    bg.kind            = BackgroundKind(rng.range(0, 2));
    bg.colour          = int(rng.range(0, ncolours - 1));
    bg.colour2         = int((bg.colour + rng.range(1, ncolours - 1)) % ncolours);
    bg.vertical        = rng.chance(0.5);
    bg.noise_seed      = rng.next();
    std::vector<int> palette; // object colours: never a background colour
    for (int c = 0; c < ncolours; ++c)
        if (c != bg.colour && !(bg.kind == BackgroundKind::Gradient && c == bg.colour2))
            palette.push_back(c);

    const double image_area = double(spec.width * spec.height);
    const int64_t n         = rng.range(least_objects, kMaxObjects);
    while (int64_t(spec.objects.size()) < n) {
        SceneObject o;
        if (!spec.objects.empty() && rng.chance(0.25)) { // a twin: groups in the caption
            const auto& prev = spec.objects.back();
            o.shape = prev.shape, o.colour = prev.colour, o.texture = prev.texture;
        } else {
            o.shape        = Shape(rng.range(0, kShapeCount - 1));
            o.colour       = palette[size_t(rng.range(0, int64_t(palette.size()) - 1))];
            const double t = rng.uniform();
            o.texture = t < 0.6 ? Texture::Solid : t < 0.8 ? Texture::Striped : Texture::Dotted;
        }
        o.aspect                = rng.uniform(0.42, 0.6);
        o.rotation              = rng.uniform(-1, 1) * max_rotation(o.shape);
        const auto& band        = kSizeBands[rng.range(0, 2)];
        const double area       = rng.uniform(band.lo, band.hi) * image_area;
        o.radius                = std::sqrt(area / unit_area(o.shape, o.aspect));
        const double reach_unit = unit_reach(o.shape, o.aspect);
        // Keep the whole shape inside the image (margin of 2 pixels).
        const double max_radius = (double(std::min(spec.width, spec.height)) / 2 - 3) / reach_unit;
        o.radius                = std::min(o.radius, max_radius);
        const double reach      = o.radius * reach_unit + 2;
        for (int attempt = 0; attempt < 20; ++attempt) {
            o.cx    = rng.uniform(reach, double(spec.width) - reach);
            o.cy    = rng.uniform(reach, double(spec.height) - reach);
            bool ok = true;
            for (const auto& p : spec.objects) {
                const double d = std::hypot(o.cx - p.cx, o.cy - p.cy);
                if (d < 0.6 * (o.radius + p.radius)) ok = false;
            }
            if (ok) break;
        }
        spec.objects.push_back(o);

        // Sometimes something sits in a ring's hole ("inside" relations).
        if (o.shape == Shape::Ring && int64_t(spec.objects.size()) < n && rng.chance(0.4)) {
            SceneObject in;
            do {
                in.shape = Shape(rng.range(0, kShapeCount - 1));
            } while (in.shape == Shape::Ring);
            do {
                in.colour = palette[size_t(rng.range(0, int64_t(palette.size()) - 1))];
            } while (in.colour == o.colour);
            in.texture  = Texture::Solid;
            in.aspect   = rng.uniform(0.42, 0.6);
            in.rotation = rng.uniform(-1, 1) * max_rotation(in.shape);
            in.radius   = 0.8 * o.radius * kRingHoleRatio / unit_reach(in.shape, in.aspect);
            in.cx = o.cx, in.cy = o.cy;
            if (in.radius >= 4) spec.objects.push_back(in);
        }
    }
    drop_hidden_objects(spec);
    return spec;
}

std::vector<std::string> relations_between(const ObjectInfo& a, const ObjectInfo& b) {
    std::vector<std::string> out;
    // inside: every visible pixel of a lies in b's filled outline (a ring counts its hole).
    auto inside = [](const ObjectInfo& x, const ObjectInfo& y) {
        if (x.area == 0 || x.full_area >= y.full_area) return false;
        SceneObject filled = y.object;
        if (filled.shape == Shape::Ring) filled.shape = Shape::Circle;
        const PlacedShape outline(filled);
        const auto m = rle_decode(x.mask);
        for (int64_t py = x.bbox[1]; py < x.bbox[3]; ++py)
            for (int64_t px = x.bbox[0]; px < x.bbox[2]; ++px)
                if (m[size_t(py * x.mask.width + px)] && !outline.contains(px + 0.5, py + 0.5))
                    return false;
        return true;
    };
    if (inside(a, b)) return {"inside"};
    if (inside(b, a)) { // a contains b: only the size comparison applies
        if (a.full_area >= 2 * b.full_area) out.push_back("bigger than");
        return out;
    }
    // Directions: a's centroid beyond b's near edge and a's far edge before b's centroid.
    if (a.cx < double(b.bbox[0]) && double(a.bbox[2]) <= b.cx) out.push_back("left of");
    if (a.cx > double(b.bbox[2]) && double(a.bbox[0]) >= b.cx) out.push_back("right of");
    if (a.cy < double(b.bbox[1]) && double(a.bbox[3]) <= b.cy) out.push_back("above");
    if (a.cy > double(b.bbox[3]) && double(a.bbox[1]) >= b.cy) out.push_back("below");
    // next to: the boxes' gap is at most half the smaller object's side.
    const int64_t gap = std::max({b.bbox[0] - a.bbox[2], a.bbox[0] - b.bbox[2],
                                  b.bbox[1] - a.bbox[3], a.bbox[1] - b.bbox[3], int64_t(0)});
    const double side = std::sqrt(double(std::min(a.full_area, b.full_area)));
    if (double(gap) <= 0.5 * side) out.push_back("next to");
    if (a.full_area >= 2 * b.full_area) out.push_back("bigger than");
    return out;
}

std::string strip_gcg_markup(const std::string& markup) {
    std::string s = markup;
    for (const std::string tok : {"<p> ", " </p> [SEG]", " </p>", "<p>", " [SEG]", "[SEG]"}) {
        for (size_t pos; (pos = s.find(tok)) != std::string::npos;) s.erase(pos, tok.size());
    }
    return s;
}

GeneratedScene generate_scene(const SynthOptions& options, int64_t index) {
    const SceneSpec spec   = random_scene(options, index);
    RenderedScene rendered = render_scene(spec);
    SceneAnnotation ann    = annotate_scene(spec, rendered);
    return {std::move(ann), std::move(rendered.image)};
}

SceneAnnotation annotate_scene(const SceneSpec& spec, const RenderedScene& rendered) {
    SceneAnnotation a;
    a.width              = spec.width;
    a.height             = spec.height;
    const auto& colours  = named_colours();
    const auto& bg       = spec.background;
    const std::string c1 = colours.at(size_t(bg.colour)).name;
    switch (bg.kind) {
    case BackgroundKind::Solid:
        a.background = article(c1) + " " + c1 + " background";
        break;
    case BackgroundKind::Gradient:
        a.background = article(c1) + " " + c1 + " and " + colours.at(size_t(bg.colour2)).name +
                       " gradient background";
        break;
    case BackgroundKind::Noise:
        a.background = "a noisy " + c1 + " background";
        break;
    }

    // 1. Objects: visible pixels from the owner map.
    for (size_t i = 0; i < spec.objects.size(); ++i) {
        const auto px = object_pixels(rendered, int16_t(i));
        ObjectInfo o;
        o.id      = int(i) + 1;
        o.object  = spec.objects[i];
        o.shape   = shape_name(o.object.shape);
        o.colour  = colours.at(size_t(o.object.colour)).name;
        o.size    = size_word(o.object, spec.width, spec.height);
        o.texture = texture_name(o.object.texture);
        o.bbox    = {spec.width, spec.height, 0, 0};
        double sx = 0, sy = 0;
        for (int64_t y = 0; y < spec.height; ++y)
            for (int64_t x = 0; x < spec.width; ++x)
                if (px[size_t(y * spec.width + x)]) {
                    ++o.area;
                    sx += x + 0.5, sy += y + 0.5;
                    o.bbox = {std::min(o.bbox[0], x), std::min(o.bbox[1], y),
                              std::max(o.bbox[2], x + 1), std::max(o.bbox[3], y + 1)};
                }
        if (o.area == 0) continue; // fully hidden (hand-made scenes only)
        o.cx        = sx / double(o.area);
        o.cy        = sy / double(o.area);
        o.full_area = shape_pixel_area(o.object);
        o.mask      = rle_encode(px.data(), spec.height, spec.width);
        a.objects.push_back(std::move(o));
    }

    // 2. Relations between every ordered pair.
    for (const auto& x : a.objects)
        for (const auto& y : a.objects)
            if (x.id != y.id)
                for (auto& p : relations_between(x, y)) a.relations.push_back({x.id, y.id, p});

    // 3. Dense caption: objects grouped by (shape, colour, texture), groups left to right, in
    // pairs joined by their strongest relation.
    std::map<std::tuple<int, int, int>, std::vector<const ObjectInfo*>> by_key;
    std::vector<std::tuple<int, int, int>> key_order;
    for (const auto& o : a.objects) {
        const auto key =
            std::make_tuple(int(o.object.shape), o.object.colour, int(o.object.texture));
        if (!by_key.count(key)) key_order.push_back(key);
        by_key[key].push_back(&o);
    }
    struct Group {
        std::vector<const ObjectInfo*> members;
        ObjectInfo merged;
        std::string text;
    };
    std::vector<Group> groups;
    for (const auto& key : key_order) {
        Group g;
        g.members             = by_key[key];
        g.merged              = merge_infos(g.members);
        const auto& f         = *g.members.front();
        const std::string tex = f.texture == "solid" ? "" : f.texture;
        if (g.members.size() == 1) {
            const std::string rest = join_words({f.size, tex, f.colour, f.shape});
            g.text                 = article(rest) + " " + rest;
        } else {
            g.text = join_words(
                {number_word(g.members.size()), tex, f.colour, shape_plural(f.object.shape)});
        }
        groups.push_back(std::move(g));
    }
    std::stable_sort(groups.begin(), groups.end(),
                     [](const Group& x, const Group& y) { return x.merged.cx < y.merged.cx; });

    auto verb   = [](const Group& g) { return g.members.size() > 1 ? "are" : "is"; };
    auto ground = [&](const Group& g) {
        a.phrases.push_back({g.text, {}, g.merged.mask});
        for (const auto* m : g.members) a.phrases.back().objects.push_back(m->id);
        return "<p> " + g.text + " </p> [SEG]";
    };
    std::vector<std::string> clauses;
    for (size_t i = 0; i < groups.size(); i += 2) {
        if (i + 1 == groups.size()) {
            const auto& g = groups[i];
            const std::string where =
                position_words(g.merged.cx, g.merged.cy, spec.width, spec.height);
            clauses.push_back(ground(g) + " " + verb(g) + " " + where);
            continue;
        }
        const Group* s = &groups[i];
        const Group* o = &groups[i + 1];
        auto rel       = relations_between(s->merged, o->merged);
        if (rel.empty() || rel.front() == "bigger than") {
            const auto back = relations_between(o->merged, s->merged);
            if (!back.empty() && back.front() == "inside") std::swap(s, o), rel = back;
        }
        std::string link;
        for (const auto& r : rel) {
            if (r == "bigger than") continue;
            link = r == "left of" ? "to the left of" : r == "right of" ? "to the right of" : r;
            break;
        }
        if (link.empty()) {
            const std::string first = ground(*s); // phrases are numbered in caption order
            clauses.push_back(first + " and " + ground(*o) + " are in the picture");
        } else {
            const std::string first = ground(*s);
            clauses.push_back(first + " " + verb(*s) + " " + link + " " + ground(*o));
        }
    }
    std::string text;
    for (size_t i = 0; i < clauses.size(); ++i) {
        if (i > 0) text += (i + 1 == clauses.size()) ? ", and " : ", ";
        text += clauses[i];
    }
    a.gcg_caption = text + (clauses.empty() ? "" : ", ") + "on " + a.background + ".";
    a.caption     = strip_gcg_markup(a.gcg_caption);

    // 4. Referring expressions: the shortest unique description of each object, then each group.
    for (const auto& o : a.objects) {
        std::vector<const ObjectInfo*> same; // same shape and colour
        for (const auto& p : a.objects)
            if (p.object.shape == o.object.shape && p.object.colour == o.object.colour)
                same.push_back(&p);
        auto count_matching = [&](bool size, bool texture) {
            int n = 0;
            for (const auto* p : same)
                n += (!size || p->size == o.size) && (!texture || p->texture == o.texture);
            return n;
        };
        std::string text;
        for (const auto& [use_size, use_tex] : std::vector<std::pair<bool, bool>>{
                 {false, false}, {true, false}, {false, true}, {true, true}}) {
            if (count_matching(use_size, use_tex) == 1) {
                text = "the " + join_words({use_size ? o.size : "", use_tex ? o.texture : "",
                                            o.colour, o.shape});
                break;
            }
        }
        if (text.empty()) { // same shape, colour, size and texture: tell them apart by position
            double margin = 0.25 * std::sqrt(double(o.full_area));
            struct Dir {
                const char* two;
                const char* many;
                double score;
            };
            std::vector<Dir> dirs;
            double left = 1e18, right = 1e18, up = 1e18, down = 1e18;
            for (const auto* p : same) {
                if (p == &o) continue;
                left  = std::min(left, p->cx - o.cx);
                right = std::min(right, o.cx - p->cx);
                up    = std::min(up, p->cy - o.cy);
                down  = std::min(down, o.cy - p->cy);
            }
            dirs.push_back({"on the left", "leftmost", left});
            dirs.push_back({"on the right", "rightmost", right});
            dirs.push_back({"at the top", "topmost", up});
            dirs.push_back({"at the bottom", "bottommost", down});
            const auto best = std::max_element(dirs.begin(), dirs.end(),
                                               [](auto& x, auto& y) { return x.score < y.score; });
            if (best->score > margin) {
                const std::string base = join_words({o.colour, o.shape});
                text                   = same.size() == 2 ? "the " + base + " " + best->two
                                                          : "the " + std::string(best->many) + " " + base;
            }
        }
        if (!text.empty()) a.referring.push_back({text, {o.id}, o.mask});
    }
    for (const auto& g : groups) {
        if (g.members.size() < 2) continue;
        const auto& f = *g.members.front();
        size_t same   = 0;
        for (const auto& p : a.objects)
            same += p.object.shape == f.object.shape && p.object.colour == f.object.colour;
        // Group keys are unique, so the group is every object of its shape, colour and texture:
        // "the two blue squares", or "the two striped blue squares" when other blue squares exist.
        const std::string tex = same == g.members.size() ? "" : f.texture;
        ReferringExpression r;
        r.text = "the " + join_words({number_word(g.members.size()), tex, f.colour,
                                      shape_plural(f.object.shape)});
        for (const auto* m : g.members) r.objects.push_back(m->id);
        r.mask = g.merged.mask;
        a.referring.push_back(std::move(r));
    }

    // 5. Region descriptions: every object's box.
    for (const auto& o : a.objects) {
        const std::string rest =
            join_words({o.size, o.texture == "solid" ? "" : o.texture, o.colour, o.shape});
        a.regions.push_back({o.id, o.bbox, article(rest) + " " + rest});
    }
    return a;
}

json scene_to_json(const SceneAnnotation& a, const std::string& image_id,
                   const std::string& file_name) {
    json objects = json::array();
    for (const auto& o : a.objects)
        objects.push_back({{"id", o.id},
                           {"shape", o.shape},
                           {"colour", o.colour},
                           {"size", o.size},
                           {"texture", o.texture},
                           {"bbox", box_json(o.bbox)},
                           {"area", o.area},
                           {"full_area", o.full_area},
                           {"segmentation", rle_json(o.mask)}});
    json relations = json::array();
    for (const auto& r : a.relations)
        relations.push_back(
            {{"subject", r.subject}, {"object", r.object}, {"predicate", r.predicate}});
    json phrases = json::array();
    for (const auto& p : a.phrases)
        phrases.push_back(
            {{"text", p.text}, {"object_ids", p.objects}, {"segmentation", rle_json(p.mask)}});
    json refs = json::array();
    for (const auto& r : a.referring)
        refs.push_back(
            {{"sentence", r.text}, {"object_ids", r.objects}, {"segmentation", rle_json(r.mask)}});
    json regions = json::array();
    for (const auto& r : a.regions)
        regions.push_back(
            {{"object_id", r.object}, {"bbox", box_json(r.bbox)}, {"caption", r.text}});
    return {{"image_id", image_id},
            {"file_name", file_name},
            {"width", a.width},
            {"height", a.height},
            {"background", a.background},
            {"objects", objects},
            {"relations", relations},
            {"dense_caption", {{"gcg", a.gcg_caption}, {"plain", a.caption}, {"phrases", phrases}}},
            {"gcg_answer", a.gcg_caption},
            {"referring", refs},
            {"regions", regions}};
}

SynthSummary write_synth_dataset(const SynthOptions& options, const std::string& out_dir,
                                 const std::function<void(int64_t)>& progress) {
    if (options.count < 1) fail("--count must be at least 1");
    const fs::path root(out_dir);
    std::error_code ec;
    fs::create_directories(root / "images", ec);
    if (ec) fail("cannot create ", (root / "images").string(), ": ", ec.message());

    json info = {{"generator", "glamm synth"},   {"version", kGeneratorVersion},
                 {"seed", options.seed},         {"count", options.count},
                 {"min_size", options.min_size}, {"max_size", options.max_size}};
    // Recorded only when set, so that datasets written before the option keep their bytes.
    if (options.min_objects != 1) info["min_objects"] = options.min_objects;
    if (options.min_objects_share != 1.0) info["min_objects_share"] = options.min_objects_share;
    json images = json::array(), gcg_anns = json::array(), scenes = json::array();
    json ref_anns = json::array(), reg_images = json::array(), reg_anns = json::array();
    SynthSummary sum;
    int64_t mask_id = 1, ref_id = 1, reg_id = 1;
    for (int64_t i = 0; i < options.count; ++i) {
        const GeneratedScene scene = generate_scene(options, i);
        const SceneAnnotation& ann = scene.annotation;
        char stem[64];
        std::snprintf(stem, sizeof stem, "shapes_s%llu_%06lld",
                      static_cast<unsigned long long>(options.seed), static_cast<long long>(i));
        const std::string id   = stem;
        const std::string file = "images/" + id + ".png";
        save_png((root / file).string(), scene.image.rgb.data(), scene.image.width,
                 scene.image.height, 3);

        const json image = {{"id", id},
                            {"file_name", file},
                            {"height", scene.image.height},
                            {"width", scene.image.width}};
        images.push_back(image);
        json labels = json::array();
        for (const auto& p : ann.phrases) {
            gcg_anns.push_back({{"id", mask_id++},
                                {"image_id", id},
                                {"category_id", 1},
                                {"segmentation", rle_json(p.mask)},
                                {"area", p.mask.area()},
                                {"bbox", coco_box(p.mask)},
                                {"iscrowd", 0},
                                {"phrase", p.text},
                                {"object_ids", p.objects}});
            labels.push_back(p.text);
        }
        gcg_anns.push_back({{"image_id", id},
                            {"caption", ann.caption},
                            {"labels", labels},
                            {"gcg_caption", ann.gcg_caption}});
        scenes.push_back(scene_to_json(ann, id, file));
        for (const auto& r : ann.referring)
            ref_anns.push_back({{"id", ref_id++},
                                {"image_id", id},
                                {"sentence", r.text},
                                {"object_ids", r.objects},
                                {"segmentation", rle_json(r.mask)},
                                {"area", r.mask.area()},
                                {"bbox", coco_box(r.mask)}});
        for (const auto& r : ann.regions) {
            const std::string rid = id + "_obj" + std::to_string(r.object);
            reg_images.push_back({{"id", rid},
                                  {"file_name", file},
                                  {"height", scene.image.height},
                                  {"width", scene.image.width},
                                  {"scene_image_id", id},
                                  {"object_id", r.object},
                                  {"bbox", box_json(r.bbox)}});
            reg_anns.push_back({{"id", reg_id++},
                                {"image_id", rid},
                                {"caption", r.text},
                                {"bbox", box_json(r.bbox)}});
        }
        sum.images += 1;
        sum.objects += int64_t(ann.objects.size());
        sum.phrases += int64_t(ann.phrases.size());
        sum.referring += int64_t(ann.referring.size());
        sum.regions += int64_t(ann.regions.size());
        if (progress) progress(i + 1);
    }
    auto write = [&](const char* name, const json& j) {
        write_file_atomic((root / name).string(), j.dump(1) + "\n");
    };
    write("annotations.json",
          {{"info", info}, {"images", images}, {"annotations", gcg_anns}, {"scenes", scenes}});
    write("refseg.json", {{"info", info}, {"images", images}, {"annotations", ref_anns}});
    write("regcap.json", {{"info", info}, {"images", reg_images}, {"annotations", reg_anns}});
    json manifest         = info;
    manifest["images"]    = sum.images;
    manifest["objects"]   = sum.objects;
    manifest["phrases"]   = sum.phrases;
    manifest["referring"] = sum.referring;
    manifest["regions"]   = sum.regions;
    manifest["files"]     = {"images/", "annotations.json", "refseg.json", "regcap.json"};
    write("manifest.json", manifest);
    return sum;
}

std::optional<AttributeMatch> match_colour_and_shape(const std::string& truth,
                                                     const std::string& prediction) {
    auto words = [](const std::string& text) {
        std::vector<std::string> out;
        std::string word;
        for (const char c : text + " ") {
            if (std::isalpha(static_cast<unsigned char>(c))) {
                word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            } else if (!word.empty()) {
                out.push_back(word);
                word.clear();
            }
        }
        return out;
    };
    const std::vector<std::string> t = words(truth), p = words(prediction);
    auto has = [](const std::vector<std::string>& v, const std::string& w) {
        return std::find(v.begin(), v.end(), w) != v.end();
    };
    std::string colour, shape;
    for (const auto& c : named_colours())
        if (has(t, c.name)) colour = c.name;
    for (int i = 0; i < kShapeCount; ++i)
        if (has(t, shape_name(static_cast<Shape>(i)))) shape = shape_name(static_cast<Shape>(i));
    if (colour.empty() || shape.empty()) return std::nullopt;
    return AttributeMatch{has(p, colour), has(p, shape)};
}

std::optional<bool> names_colour_and_shape(const std::string& truth,
                                           const std::string& prediction) {
    const std::optional<AttributeMatch> m = match_colour_and_shape(truth, prediction);
    if (!m) return std::nullopt;
    return m->colour && m->shape;
}

} // namespace glamm::synth
