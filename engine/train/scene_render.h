// Synthetic scenes for GLaMM-Shapes: the shape geometry, the named colours and the rasteriser.
// Pure C++ (no OpenCV, no torch): every pixel is coloured from an exact point-in-shape test at its
// centre, so object masks are exactly the drawn pixel sets (no anti-aliasing) and the bytes do
// not depend on a drawing library's version. Legend: images [height, width, 3] RGB8 row-major;
// owner map [height, width], -1 = background, else the index of the visible object.
#pragma once

#include "vision/image.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace glamm::synth {

enum class Shape { Circle, Square, Rectangle, Triangle, Star, Ring, Hexagon, Cross };
enum class Texture { Solid, Striped, Dotted };
enum class BackgroundKind { Solid, Gradient, Noise };

constexpr int kShapeCount = 8;
const char* shape_name(Shape s);     // "circle"
const char* shape_plural(Shape s);   // "circles"
const char* texture_name(Texture t); // "solid"
const char* background_name(BackgroundKind b);

struct NamedColour {
    const char* name;
    std::array<uint8_t, 3> rgb;
};
// The closed colour list objects and backgrounds are drawn from (red, green, blue, ...).
const std::vector<NamedColour>& named_colours();

// Ring hole radius / outer radius; star inner / outer radius; cross arm width / span.
constexpr double kRingHoleRatio  = 0.55;
constexpr double kStarInnerRatio = 0.45;
constexpr double kCrossArmRatio  = 0.36;

// One object as placed: centre (pixels, x right, y down), `radius` = half the extent before
// rotation (circumradius for circle/triangle/star/hexagon/ring, half side for square/cross,
// half the long side for rectangle), `aspect` = short/long side of a rectangle, rotation in
// radians. Textures use a second colour derived from the main one (texture_colour).
struct SceneObject {
    Shape shape     = Shape::Circle;
    int colour      = 0; // index into named_colours()
    Texture texture = Texture::Solid;
    double cx = 0, cy = 0, radius = 10, aspect = 0.5, rotation = 0;
};

struct Background {
    BackgroundKind kind = BackgroundKind::Solid;
    int colour          = 0;     // index into named_colours()
    int colour2         = 0;     // gradient end colour
    bool vertical       = false; // gradient direction: top -> bottom when true
    uint64_t noise_seed = 0;
};

struct SceneSpec {
    int64_t width = 0, height = 0;
    Background background;
    std::vector<SceneObject> objects; // drawing order: later objects occlude earlier ones
};

// An object's shape placed in the image, for many point tests: the rotation's cosine and sine
// are computed once, not per pixel (the rasteriser tests every pixel of each object's extent).
class PlacedShape {
public:
    explicit PlacedShape(const SceneObject& o);
    // Whether the point (x, y) (pixel centres are at integer + 0.5) lies in the shape.
    bool contains(double x, double y) const;
    // Whether pixel (px, py) shows the texture's second colour (texture_pixel).
    bool texture_at(int64_t px, int64_t py) const;

private:
    std::array<double, 2> to_local(double x, double y) const; // the unrotated, centred frame
    SceneObject object_;
    double cos_ = 1, sin_ = 0;
};

// Whether the point (x, y) (pixel centres are at integer + 0.5) lies in the object's shape (one
// test; PlacedShape for many).
bool shape_contains(const SceneObject& o, double x, double y);
// Axis-aligned box that encloses the shape: x0, y0, x1, y1 (pixels, inclusive-exclusive, may lie
// outside the image).
std::array<int64_t, 4> shape_extent(const SceneObject& o);
// Number of pixels the shape covers on an unbounded canvas (pixel-centre rule).
int64_t shape_pixel_area(const SceneObject& o);

// The texture's second colour: the main colour halfway to white (dark colours) or black.
std::array<uint8_t, 3> texture_colour(int colour);
// Whether pixel (px, py) of the object shows the texture's second colour.
bool texture_pixel(const SceneObject& o, int64_t px, int64_t py);

struct RenderedScene {
    Image image;
    std::vector<int16_t> owner; // [height, width]
};
RenderedScene render_scene(const SceneSpec& spec);

} // namespace glamm::synth
