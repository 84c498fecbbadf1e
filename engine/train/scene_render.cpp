// Rasteriser for synthetic scenes: exact pixel-centre tests, painter's order.
#include "train/scene_render.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>

namespace glamm::synth {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Unit-radius polygon vertices (x, y) in the shape's local frame, first vertex pointing up.
std::vector<std::array<double, 2>> make_polygon(int points, double inner_ratio) {
    const bool star = inner_ratio > 0;
    const int n     = star ? points * 2 : points;
    std::vector<std::array<double, 2>> v;
    for (int k = 0; k < n; ++k) {
        const double a = -kPi / 2 + 2 * kPi * k / n;
        const double r = (star && k % 2 == 1) ? inner_ratio : 1.0;
        v.push_back({r * std::cos(a), r * std::sin(a)});
    }
    return v;
}

const std::vector<std::array<double, 2>>& unit_polygon(Shape s) {
    static const auto triangle = make_polygon(3, 0);
    static const auto hexagon  = make_polygon(6, 0);
    static const auto star     = make_polygon(5, kStarInnerRatio);
    switch (s) {
    case Shape::Triangle:
        return triangle;
    case Shape::Hexagon:
        return hexagon;
    case Shape::Star:
        return star;
    default:
        fail("shape ", shape_name(s), " is not a polygon");
    }
}

// Even-odd crossing test of (u, v) against a polygon scaled by r.
bool in_polygon(const std::vector<std::array<double, 2>>& poly, double r, double u, double v) {
    bool inside    = false;
    const size_t n = poly.size();
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
        const double xi = poly[i][0] * r, yi = poly[i][1] * r;
        const double xj = poly[j][0] * r, yj = poly[j][1] * r;
        if ((yi > v) != (yj > v)) {
            const double x = xi + (v - yi) * (xj - xi) / (yj - yi);
            if (u < x) inside = !inside;
        }
    }
    return inside;
}

uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Background noise amplitude (grey levels either side of the base colour).
constexpr int kNoiseAmplitude = 28;

std::array<uint8_t, 3> background_pixel(const SceneSpec& spec, int64_t x, int64_t y) {
    const auto& bg             = spec.background;
    const auto& c1             = named_colours().at(size_t(bg.colour)).rgb;
    std::array<uint8_t, 3> out = c1;
    if (bg.kind == BackgroundKind::Gradient) {
        const auto& c2     = named_colours().at(size_t(bg.colour2)).rgb;
        const int64_t span = bg.vertical ? spec.height - 1 : spec.width - 1;
        const int64_t pos  = bg.vertical ? y : x;
        for (int k = 0; k < 3; ++k)
            out[size_t(k)] = uint8_t(
                (int64_t(c1[size_t(k)]) * (span - pos) + int64_t(c2[size_t(k)]) * pos + span / 2) /
                std::max<int64_t>(span, 1));
    } else if (bg.kind == BackgroundKind::Noise) {
        const uint64_t h =
            splitmix(bg.noise_seed ^ uint64_t(y * spec.width + x) * 0x2545F4914F6CDD1Dull);
        const int delta = int(h % uint64_t(2 * kNoiseAmplitude + 1)) - kNoiseAmplitude;
        for (int k = 0; k < 3; ++k)
            out[size_t(k)] = uint8_t(std::clamp(int(c1[size_t(k)]) + delta, 0, 255));
    }
    return out;
}

} // namespace

const char* shape_name(Shape s) {
    switch (s) {
    case Shape::Circle:
        return "circle";
    case Shape::Square:
        return "square";
    case Shape::Rectangle:
        return "rectangle";
    case Shape::Triangle:
        return "triangle";
    case Shape::Star:
        return "star";
    case Shape::Ring:
        return "ring";
    case Shape::Hexagon:
        return "hexagon";
    case Shape::Cross:
        return "cross";
    }
    return "?";
}

const char* shape_plural(Shape s) {
    switch (s) {
    case Shape::Circle:
        return "circles";
    case Shape::Square:
        return "squares";
    case Shape::Rectangle:
        return "rectangles";
    case Shape::Triangle:
        return "triangles";
    case Shape::Star:
        return "stars";
    case Shape::Ring:
        return "rings";
    case Shape::Hexagon:
        return "hexagons";
    case Shape::Cross:
        return "crosses";
    }
    return "?";
}

const char* texture_name(Texture t) {
    switch (t) {
    case Texture::Solid:
        return "solid";
    case Texture::Striped:
        return "striped";
    case Texture::Dotted:
        return "dotted";
    }
    return "?";
}

const char* background_name(BackgroundKind b) {
    switch (b) {
    case BackgroundKind::Solid:
        return "solid";
    case BackgroundKind::Gradient:
        return "gradient";
    case BackgroundKind::Noise:
        return "noise";
    }
    return "?";
}

const std::vector<NamedColour>& named_colours() {
    static const std::vector<NamedColour> colours = {
        {"red", {220, 40, 40}},     {"green", {40, 170, 60}},   {"blue", {40, 80, 220}},
        {"yellow", {240, 220, 40}}, {"orange", {245, 140, 30}}, {"purple", {140, 60, 180}},
        {"white", {250, 250, 250}}, {"black", {20, 20, 20}},    {"pink", {240, 130, 190}},
        {"brown", {130, 80, 40}},   {"grey", {128, 128, 128}},  {"cyan", {40, 200, 220}},
    };
    return colours;
}

PlacedShape::PlacedShape(const SceneObject& o)
    : object_(o), cos_(std::cos(o.rotation)), sin_(std::sin(o.rotation)) {}

std::array<double, 2> PlacedShape::to_local(double x, double y) const {
    const double dx = x - object_.cx, dy = y - object_.cy;
    return {dx * cos_ + dy * sin_, -dx * sin_ + dy * cos_};
}

bool PlacedShape::contains(double x, double y) const {
    const auto [u, v] = to_local(x, y);
    const double r    = object_.radius;
    switch (object_.shape) {
    case Shape::Circle:
        return u * u + v * v <= r * r;
    case Shape::Ring: {
        const double d2 = u * u + v * v, hole = r * kRingHoleRatio;
        return d2 <= r * r && d2 >= hole * hole;
    }
    case Shape::Square:
        return std::abs(u) <= r && std::abs(v) <= r;
    case Shape::Rectangle:
        return std::abs(u) <= r && std::abs(v) <= r * object_.aspect;
    case Shape::Cross: {
        const double a = r * kCrossArmRatio;
        return (std::abs(u) <= r && std::abs(v) <= a) || (std::abs(u) <= a && std::abs(v) <= r);
    }
    case Shape::Triangle:
    case Shape::Hexagon:
    case Shape::Star:
        return in_polygon(unit_polygon(object_.shape), r, u, v);
    }
    return false;
}

bool PlacedShape::texture_at(int64_t px, int64_t py) const {
    const SceneObject& o = object_;
    if (o.texture == Texture::Solid) return false;
    const auto [u, v] = to_local(px + 0.5, py + 0.5);
    // Stripe width and dot spacing follow the object's size, with a floor so they stay visible.
    if (o.texture == Texture::Striped) {
        const double period = std::max(6.0, o.radius / 2.5);
        return int64_t(std::floor((u + 4 * o.radius) / (period / 2))) % 2 == 1;
    }
    const double cell = std::max(7.0, o.radius / 2.5);
    const double fu   = u / cell - std::floor(u / cell) - 0.5;
    const double fv   = v / cell - std::floor(v / cell) - 0.5;
    return fu * fu + fv * fv < 0.09; // dot radius 0.3 cell
}

bool shape_contains(const SceneObject& o, double x, double y) {
    return PlacedShape(o).contains(x, y);
}

std::array<int64_t, 4> shape_extent(const SceneObject& o) {
    double reach = o.radius;
    if (o.shape == Shape::Square || o.shape == Shape::Cross) reach = o.radius * std::sqrt(2.0);
    if (o.shape == Shape::Rectangle) reach = o.radius * std::sqrt(1 + o.aspect * o.aspect);
    return {int64_t(std::floor(o.cx - reach)) - 1, int64_t(std::floor(o.cy - reach)) - 1,
            int64_t(std::ceil(o.cx + reach)) + 2, int64_t(std::ceil(o.cy + reach)) + 2};
}

int64_t shape_pixel_area(const SceneObject& o) {
    const PlacedShape shape(o);
    const auto e = shape_extent(o);
    int64_t n    = 0;
    for (int64_t y = e[1]; y < e[3]; ++y)
        for (int64_t x = e[0]; x < e[2]; ++x) n += shape.contains(x + 0.5, y + 0.5) ? 1 : 0;
    return n;
}

std::array<uint8_t, 3> texture_colour(int colour) {
    const auto& c    = named_colours().at(size_t(colour)).rgb;
    const int luma   = (299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000;
    const int target = luma > 150 ? 0 : 255;
    return {uint8_t((c[0] + target) / 2), uint8_t((c[1] + target) / 2),
            uint8_t((c[2] + target) / 2)};
}

bool texture_pixel(const SceneObject& o, int64_t px, int64_t py) {
    return PlacedShape(o).texture_at(px, py);
}

RenderedScene render_scene(const SceneSpec& spec) {
    if (spec.width <= 0 || spec.height <= 0) fail("scene size must be positive");
    RenderedScene out;
    const int64_t w = spec.width, h = spec.height;
    out.owner.assign(size_t(w * h), int16_t(-1));
    std::vector<PlacedShape> shapes;
    for (const SceneObject& o : spec.objects) shapes.emplace_back(o);
    for (size_t i = 0; i < spec.objects.size(); ++i) {
        const auto e = shape_extent(spec.objects[i]);
        for (int64_t y = std::max<int64_t>(e[1], 0); y < std::min(e[3], h); ++y)
            for (int64_t x = std::max<int64_t>(e[0], 0); x < std::min(e[2], w); ++x)
                if (shapes[i].contains(x + 0.5, y + 0.5)) out.owner[size_t(y * w + x)] = int16_t(i);
    }
    out.image.width  = w;
    out.image.height = h;
    out.image.rgb.resize(size_t(w * h * 3));
    for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
            const int16_t k = out.owner[size_t(y * w + x)];
            std::array<uint8_t, 3> c;
            if (k < 0) {
                c = background_pixel(spec, x, y);
            } else {
                const auto& o = spec.objects[size_t(k)];
                c             = shapes[size_t(k)].texture_at(x, y) ? texture_colour(o.colour)
                                                                   : named_colours().at(size_t(o.colour)).rgb;
            }
            std::copy(c.begin(), c.end(), out.image.rgb.begin() + (y * w + x) * 3);
        }
    return out;
}

} // namespace glamm::synth
