// The GLaMM-Shapes scene generator: determinism, exact masks, geometric relations on hand-placed
// scenes, the caption grammar and the dataset files.
#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/rle.h"
#include "support/test_support.h"
#include "train/synth.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

namespace {

using namespace glamm;
using namespace glamm::synth;
namespace fs = std::filesystem;

int colour_index(const std::string& name) {
    const auto& c = named_colours();
    for (size_t i = 0; i < c.size(); ++i)
        if (name == c[i].name) return int(i);
    ADD_FAILURE() << "no colour " << name;
    return 0;
}

SceneObject make(Shape s, const std::string& colour, double cx, double cy, double r,
                 Texture t = Texture::Solid) {
    SceneObject o;
    o.shape   = s;
    o.colour  = colour_index(colour);
    o.texture = t;
    o.cx = cx, o.cy = cy, o.radius = r;
    return o;
}

SceneSpec white_scene(int64_t w, int64_t h, std::vector<SceneObject> objects) {
    SceneSpec s;
    s.width = w, s.height = h;
    s.background.colour = colour_index("white");
    s.objects           = std::move(objects);
    return s;
}

const ObjectInfo& object(const SceneAnnotation& a, int id) {
    for (const auto& o : a.objects)
        if (o.id == id) return o;
    throw std::runtime_error("no object " + std::to_string(id));
}

bool has_relation(const SceneAnnotation& a, int s, const std::string& p, int o) {
    for (const auto& r : a.relations)
        if (r.subject == s && r.object == o && r.predicate == p) return true;
    return false;
}

std::map<std::string, std::string> read_tree(const fs::path& root) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file())
            files[fs::relative(e.path(), root).string()] = read_file(e.path().string());
    return files;
}

} // namespace

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
    SynthOptions opt;
    opt.seed = 11, opt.count = 4, opt.min_size = 96, opt.max_size = 192;
    const std::string a = test::make_temp_dir("synth_a"), b = test::make_temp_dir("synth_b"),
                      c = test::make_temp_dir("synth_c");
    write_synth_dataset(opt, a);
    write_synth_dataset(opt, b);
    opt.seed = 12;
    write_synth_dataset(opt, c);
    const auto fa = read_tree(a), fb = read_tree(b), fc = read_tree(c);
    EXPECT_EQ(fa.size(), 4u + 4u); // 4 PNGs + annotations, refseg, regcap, manifest
    ASSERT_EQ(fa.size(), fb.size());
    for (const auto& [name, bytes] : fa) {
        ASSERT_TRUE(fb.count(name)) << name;
        EXPECT_TRUE(bytes == fb.at(name)) << name << " differs between two runs with one seed";
    }
    EXPECT_NE(fa.at("annotations.json"), fc.at("annotations.json"));
}

// Every object's mask is exactly the set of pixels where it is the topmost shape (recomputed
// here from the geometry), shows only the object's colours, and is at least 30% of the shape.
TEST(Synth, MasksAreTheVisiblePixelsOfEachShape) {
    SynthOptions opt;
    opt.seed = 3, opt.min_size = 96, opt.max_size = 256;
    int64_t checked = 0;
    for (int64_t i = 0; i < 12; ++i) {
        const auto spec = random_scene(opt, i);
        const auto r    = render_scene(spec);
        const auto a    = annotate_scene(spec, r);
        ASSERT_GE(a.objects.size(), 1u);
        ASSERT_LE(a.objects.size(), size_t(kMaxObjects));
        for (const auto& o : a.objects) {
            const auto m       = rle_decode(o.mask);
            const auto& main   = named_colours()[size_t(o.object.colour)].rgb;
            const auto second  = texture_colour(o.object.colour);
            int64_t mismatches = 0, wrong_colour = 0;
            for (int64_t y = 0; y < spec.height; ++y)
                for (int64_t x = 0; x < spec.width; ++x) {
                    int top = -1; // topmost object containing the pixel centre
                    for (size_t k = 0; k < spec.objects.size(); ++k)
                        if (shape_contains(spec.objects[k], x + 0.5, y + 0.5)) top = int(k);
                    const bool in = m[size_t(y * spec.width + x)] != 0;
                    mismatches += in != (top == o.id - 1);
                    if (in) {
                        const uint8_t* p = r.image.pixel(x, y);
                        const std::array<uint8_t, 3> c{p[0], p[1], p[2]};
                        wrong_colour += c != main && c != second;
                    }
                }
            EXPECT_EQ(mismatches, 0) << "scene " << i << " object " << o.id;
            EXPECT_EQ(wrong_colour, 0) << "scene " << i << " object " << o.id;
            EXPECT_EQ(o.area, o.mask.area());
            EXPECT_GE(double(o.area), kMinVisibleFraction * double(o.full_area));
            ++checked;
        }
    }
    EXPECT_GT(checked, 20);
}

// A hand-made scene with distinct colours: each mask equals the pixels of its colours, exactly.
TEST(Synth, MaskEqualsPixelsOfTheObjectsColoursAfterOcclusion) {
    auto spec    = white_scene(200, 160,
                               {make(Shape::Square, "red", 70, 80, 40),
                                make(Shape::Star, "blue", 110, 80, 45, Texture::Striped),
                                make(Shape::Circle, "green", 150, 60, 25, Texture::Dotted)});
    const auto r = render_scene(spec);
    const auto a = annotate_scene(spec, r);
    ASSERT_EQ(a.objects.size(), 3u);
    for (const auto& o : a.objects) {
        const auto m      = rle_decode(o.mask);
        const auto& main  = named_colours()[size_t(o.object.colour)].rgb;
        const auto second = texture_colour(o.object.colour);
        int64_t diff = 0, textured = 0;
        for (int64_t y = 0; y < spec.height; ++y)
            for (int64_t x = 0; x < spec.width; ++x) {
                const uint8_t* p = r.image.pixel(x, y);
                const std::array<uint8_t, 3> c{p[0], p[1], p[2]};
                diff += (c == main || c == second) != (m[size_t(y * spec.width + x)] != 0);
                textured += m[size_t(y * spec.width + x)] && c == second;
            }
        EXPECT_EQ(diff, 0) << o.colour << " " << o.shape;
        if (o.texture != "solid") EXPECT_GT(textured, 20) << o.texture << " shows no texture";
        EXPECT_LT(o.area, o.full_area + 1);
    }
    // The red square is partly hidden by the star; the circle is on top and whole.
    EXPECT_LT(object(a, 1).area, object(a, 1).full_area);
    EXPECT_EQ(object(a, 3).area, object(a, 3).full_area);
}

TEST(Synth, RelationsOnHandPlacedScenes) {
    // 1 red circle left, 2 blue square right (same size, far apart), 3 green circle below 1.
    {
        auto spec    = white_scene(400, 300,
                                   {make(Shape::Circle, "red", 60, 80, 25),
                                    make(Shape::Square, "blue", 300, 80, 22),
                                    make(Shape::Circle, "green", 60, 240, 25)});
        const auto a = annotate_scene(spec, render_scene(spec));
        EXPECT_TRUE(has_relation(a, 1, "left of", 2));
        EXPECT_TRUE(has_relation(a, 2, "right of", 1));
        EXPECT_FALSE(has_relation(a, 1, "above", 2));
        EXPECT_FALSE(has_relation(a, 1, "next to", 2)); // gap 190 px
        EXPECT_TRUE(has_relation(a, 1, "above", 3));
        EXPECT_TRUE(has_relation(a, 3, "below", 1));
        EXPECT_FALSE(has_relation(a, 1, "left of", 3));
        EXPECT_FALSE(has_relation(a, 1, "bigger than", 3)); // same shape and size
    }
    // A star in a ring's hole: inside (and nothing else from the star); the ring is bigger.
    {
        auto spec    = white_scene(300, 300,
                                   {make(Shape::Ring, "yellow", 150, 150, 100),
                                    make(Shape::Star, "purple", 150, 150, 30)});
        const auto a = annotate_scene(spec, render_scene(spec));
        EXPECT_TRUE(has_relation(a, 2, "inside", 1));
        EXPECT_FALSE(has_relation(a, 1, "inside", 2));
        EXPECT_TRUE(has_relation(a, 1, "bigger than", 2));
        EXPECT_FALSE(has_relation(a, 2, "left of", 1));
        EXPECT_FALSE(has_relation(a, 2, "next to", 1));
        EXPECT_EQ(a.gcg_caption, "<p> a small purple star </p> [SEG] is inside <p> a large yellow "
                                 "ring </p> [SEG], on a white background.");
    }
    // Touching squares: next to both ways, left/right of, not above; a big square is bigger.
    {
        auto spec    = white_scene(300, 200,
                                   {make(Shape::Square, "red", 100, 100, 30),
                                    make(Shape::Square, "blue", 165, 100, 30),
                                    make(Shape::Square, "black", 260, 40, 10)});
        const auto a = annotate_scene(spec, render_scene(spec));
        EXPECT_TRUE(has_relation(a, 1, "next to", 2));
        EXPECT_TRUE(has_relation(a, 2, "next to", 1));
        EXPECT_TRUE(has_relation(a, 1, "left of", 2));
        EXPECT_FALSE(has_relation(a, 1, "above", 2));
        EXPECT_TRUE(has_relation(a, 1, "bigger than", 3));
        EXPECT_FALSE(has_relation(a, 3, "bigger than", 1));
        EXPECT_FALSE(has_relation(a, 2, "next to", 3)); // gap 55 > 10 px
        EXPECT_TRUE(has_relation(a, 3, "above", 2));
    }
}

TEST(Synth, CaptionGroupsIdenticalObjectsAndGroundsTheirUnion) {
    auto spec    = white_scene(400, 300,
                               {make(Shape::Square, "blue", 60, 80, 15),
                                make(Shape::Star, "red", 300, 150, 30),
                                make(Shape::Square, "blue", 60, 220, 15)});
    const auto a = annotate_scene(spec, render_scene(spec));
    EXPECT_EQ(a.gcg_caption, "<p> two blue squares </p> [SEG] are to the left of <p> a small red "
                             "star </p> [SEG], on a white background.");
    EXPECT_EQ(a.caption,
              "two blue squares are to the left of a small red star, on a white background.");
    ASSERT_EQ(a.phrases.size(), 2u);
    EXPECT_EQ(a.phrases[0].text, "two blue squares");
    EXPECT_EQ(a.phrases[0].objects, (std::vector<int>{1, 3}));
    EXPECT_EQ(a.phrases[0].mask.area(), object(a, 1).area + object(a, 3).area);
    EXPECT_DOUBLE_EQ(
        rle_iou(a.phrases[0].mask, rle_merge({object(a, 1).mask, object(a, 3).mask}, false)), 1.0);
    EXPECT_EQ(a.phrases[1].text, "a small red star");
    EXPECT_EQ(a.phrases[1].objects, (std::vector<int>{2}));

    // Referring expressions: unique descriptions, position where attributes cannot tell apart.
    std::map<std::string, std::vector<int>> refs;
    for (const auto& r : a.referring) refs[r.text] = r.objects;
    EXPECT_EQ(refs["the red star"], (std::vector<int>{2}));
    EXPECT_EQ(refs["the blue square at the top"], (std::vector<int>{1}));
    EXPECT_EQ(refs["the blue square at the bottom"], (std::vector<int>{3}));
    EXPECT_EQ(refs["the two blue squares"], (std::vector<int>{1, 3}));
    EXPECT_EQ(refs.size(), 4u);

    // Regions: one per object, box of the visible pixels.
    ASSERT_EQ(a.regions.size(), 3u);
    EXPECT_EQ(a.regions[1].text, "a small red star");
    EXPECT_EQ(a.regions[0].bbox, object(a, 1).bbox);
    EXPECT_EQ(a.regions[0].bbox, (std::array<int64_t, 4>{45, 65, 75, 95}));
}

TEST(Synth, SingleObjectAndTexturesInTheCaption) {
    auto spec =
        white_scene(300, 300, {make(Shape::Hexagon, "orange", 150, 150, 70, Texture::Striped)});
    spec.background.kind    = BackgroundKind::Gradient;
    spec.background.colour2 = colour_index("black");
    const auto a            = annotate_scene(spec, render_scene(spec));
    EXPECT_EQ(a.gcg_caption, "<p> a large striped orange hexagon </p> [SEG] is in the centre, on a "
                             "white and black gradient background.");
    ASSERT_EQ(a.referring.size(), 1u);
    EXPECT_EQ(a.referring[0].text, "the orange hexagon");
    EXPECT_EQ(a.regions[0].text, "a large striped orange hexagon");
    EXPECT_EQ(strip_gcg_markup("<p> an orange cross </p> [SEG] is here."),
              "an orange cross is here.");
}

TEST(Synth, ScenesVaryInSizeShapeColourTextureAndCount) {
    SynthOptions opt;
    opt.seed = 5, opt.min_size = 128, opt.max_size = 320;
    std::set<std::pair<int64_t, int64_t>> sizes;
    std::set<double> aspects;
    std::set<std::string> shapes, colours, textures, counts, words, backgrounds;
    for (int64_t i = 0; i < 60; ++i) {
        const auto spec = random_scene(opt, i);
        EXPECT_GE(std::min(spec.width, spec.height), opt.min_size);
        EXPECT_LE(std::max(spec.width, spec.height), opt.max_size);
        sizes.insert({spec.width, spec.height});
        aspects.insert(std::round(10.0 * double(spec.width) / double(spec.height)));
        backgrounds.insert(background_name(spec.background.kind));
        ASSERT_GE(spec.objects.size(), 1u);
        ASSERT_LE(spec.objects.size(), size_t(kMaxObjects));
        counts.insert(std::to_string(spec.objects.size()));
        for (const auto& o : spec.objects) {
            shapes.insert(shape_name(o.shape));
            colours.insert(named_colours()[size_t(o.colour)].name);
            textures.insert(texture_name(o.texture));
            words.insert(size_word(o, spec.width, spec.height));
            EXPECT_NE(o.colour, spec.background.colour);
        }
    }
    EXPECT_GE(sizes.size(), 30u);
    EXPECT_GE(aspects.size(), 5u);
    EXPECT_EQ(shapes.size(), size_t(kShapeCount));
    EXPECT_GE(colours.size(), 10u);
    EXPECT_EQ(textures.size(), 3u);
    EXPECT_EQ(words.size(), 3u);
    EXPECT_EQ(backgrounds.size(), 3u);
    EXPECT_GE(counts.size(), 5u);
}

TEST(Synth, MinObjectsRaisesTheObjectsDrawn) {
    // Every scene draws uniformly in [min_objects, kMaxObjects] objects, then drops the hidden
    // ones: with min_objects at kMaxObjects the scenes are crowded, with the default they are
    // not, and a bound outside [1, kMaxObjects] is refused.
    SynthOptions opt;
    opt.seed = 8, opt.min_size = 224, opt.max_size = 320;
    auto counts = [&](int64_t min_objects) {
        opt.min_objects = min_objects;
        std::vector<size_t> n;
        for (int64_t i = 0; i < 60; ++i) n.push_back(random_scene(opt, i).objects.size());
        return n;
    };
    const auto plain = counts(1), crowded = counts(kMaxObjects);
    const double plain_mean   = std::accumulate(plain.begin(), plain.end(), 0.0) / 60;
    const double crowded_mean = std::accumulate(crowded.begin(), crowded.end(), 0.0) / 60;
    EXPECT_LT(plain_mean, 4.0); // uniform in 1..6 before drops: 3.5 at most
    EXPECT_GT(crowded_mean, 5.0);
    EXPECT_GT(std::count(plain.begin(), plain.end(), 1u), 0);
    EXPECT_GE(*std::min_element(crowded.begin(), crowded.end()), 3u);
    EXPECT_LE(*std::max_element(crowded.begin(), crowded.end()), size_t(kMaxObjects));
    for (const int64_t bad : {int64_t(0), int64_t(kMaxObjects + 1)}) {
        opt.min_objects = bad;
        EXPECT_THROW(random_scene(opt, 0), Error) << bad;
    }
}

TEST(Synth, MinObjectsShareMixesCrowdedScenesIntoTheUsualStream) {
    // With a share below 1 each scene is either the scene of the same index with min_objects
    // alone (crowded) or the one of min_objects 1: the pick has its own random stream, so the
    // usual scenes are left exactly as they were. A share outside [0, 1] is refused.
    SynthOptions plain, crowded, mixed;
    plain.seed = crowded.seed = mixed.seed = 8;
    plain.min_size = crowded.min_size = mixed.min_size = 224;
    plain.max_size = crowded.max_size = mixed.max_size = 320;
    crowded.min_objects = mixed.min_objects = kMaxObjects;
    mixed.min_objects_share                 = 0.5;
    auto same                               = [](const SceneSpec& a, const SceneSpec& b) {
        if (a.width != b.width || a.height != b.height || a.objects.size() != b.objects.size())
            return false;
        for (size_t k = 0; k < a.objects.size(); ++k) {
            const auto &p = a.objects[k], &q = b.objects[k];
            if (p.shape != q.shape || p.colour != q.colour || p.cx != q.cx || p.cy != q.cy ||
                p.radius != q.radius)
                return false;
        }
        return true;
    };
    constexpr int64_t kScenes = 60;
    int64_t as_crowded = 0, as_plain = 0, both = 0;
    for (int64_t i = 0; i < kScenes; ++i) {
        const SceneSpec m = random_scene(mixed, i), p = random_scene(plain, i),
                        c = random_scene(crowded, i);
        if (same(p, c)) { // the usual scene drew six objects too: the two streams agree
            ++both;
            EXPECT_TRUE(same(m, p)) << i;
        } else if (same(m, c)) {
            ++as_crowded;
        } else if (same(m, p)) {
            ++as_plain;
        } else {
            ADD_FAILURE() << "scene " << i << " is neither stream's";
        }
    }
    EXPECT_EQ(as_crowded + as_plain + both, kScenes);
    // Six objects drawn in about one usual scene in six; of the rest, a fair coin: each side
    // at least 12 of the ~50 but for odds below 1e-3.
    EXPECT_LT(both, kScenes / 3);
    EXPECT_GE(as_crowded, 12);
    EXPECT_GE(as_plain, 12);
    // A share of 1 is the crowded stream itself, 0 the usual one.
    mixed.min_objects_share = 1.0;
    EXPECT_TRUE(same(random_scene(mixed, 3), random_scene(crowded, 3)));
    mixed.min_objects_share = 0.0;
    EXPECT_TRUE(same(random_scene(mixed, 3), random_scene(plain, 3)));
    for (const double bad : {-0.1, 1.5}) {
        mixed.min_objects_share = bad;
        EXPECT_THROW(random_scene(mixed, 0), Error) << bad;
    }
}

TEST(Synth, DatasetFilesAreConsistent) {
    SynthOptions opt;
    opt.seed = 2, opt.count = 6, opt.min_size = 96, opt.max_size = 200;
    const std::string dir = test::make_temp_dir("synth_files");
    const auto sum        = write_synth_dataset(opt, dir);
    EXPECT_EQ(sum.images, 6);
    const auto ann = nlohmann::json::parse(read_file(dir + "/annotations.json"));
    ASSERT_EQ(ann.at("images").size(), 6u);
    std::map<std::string, int> masks, captions;
    for (const auto& e : ann.at("annotations")) {
        const std::string img = e.at("image_id").get<std::string>();
        if (e.contains("segmentation")) {
            EXPECT_EQ(e.at("category_id"), 1);
            const auto r = rle_from_string(e["segmentation"]["counts"].get<std::string>(),
                                           e["segmentation"]["size"][0].get<int64_t>(),
                                           e["segmentation"]["size"][1].get<int64_t>());
            EXPECT_EQ(r.area(), e.at("area").get<int64_t>());
            ++masks[img];
        }
        if (e.contains("caption")) {
            ++captions[img];
            EXPECT_EQ(int(e.at("labels").size()), masks[img]) << img; // masks come first
            EXPECT_EQ(e.at("caption"), strip_gcg_markup(e.at("gcg_caption").get<std::string>()));
        }
    }
    for (const auto& img : ann.at("images")) {
        EXPECT_EQ(captions[img.at("id").get<std::string>()], 1);
        EXPECT_TRUE(fs::exists(dir + "/" + img.at("file_name").get<std::string>()));
        const auto png = load_image(dir + "/" + img.at("file_name").get<std::string>());
        EXPECT_EQ(png.width, img.at("width").get<int64_t>());
    }
    ASSERT_EQ(ann.at("scenes").size(), 6u);
    int64_t objects = 0;
    for (const auto& s : ann.at("scenes")) objects += int64_t(s.at("objects").size());
    EXPECT_EQ(objects, sum.objects);
    const auto ref = nlohmann::json::parse(read_file(dir + "/refseg.json"));
    EXPECT_EQ(int64_t(ref.at("annotations").size()), sum.referring);
    const auto reg = nlohmann::json::parse(read_file(dir + "/regcap.json"));
    EXPECT_EQ(int64_t(reg.at("annotations").size()), sum.objects);
    const auto man = nlohmann::json::parse(read_file(dir + "/manifest.json"));
    EXPECT_EQ(man.at("seed"), 2);
    EXPECT_EQ(man.at("version"), kGeneratorVersion);
}

// The region-caption criterion of issue 7, on hand-made captions.
TEST(Synth, NamesColourAndShape) {
    using glamm::synth::names_colour_and_shape;
    EXPECT_EQ(names_colour_and_shape("a large striped red star", "a red star"), true);
    EXPECT_EQ(names_colour_and_shape("a large striped red star", "A small RED star."), true);
    EXPECT_EQ(names_colour_and_shape("a red star", "a blue star"), false);
    EXPECT_EQ(names_colour_and_shape("a red star", "a red circle"), false);
    // Whole words only: "starry" does not name a star, "reddish" not red.
    EXPECT_EQ(names_colour_and_shape("a red star", "a starry reddish thing"), false);
    // A truth without a generator colour or shape is not judged.
    EXPECT_EQ(names_colour_and_shape("a large thing", "a red star"), std::nullopt);
    // Each attribute on its own.
    const auto m = glamm::synth::match_colour_and_shape("a large striped red star", "a red circle");
    ASSERT_TRUE(m.has_value());
    EXPECT_TRUE(m->colour);
    EXPECT_FALSE(m->shape);
    const auto n = glamm::synth::match_colour_and_shape("a red star", "a blue star");
    ASSERT_TRUE(n.has_value());
    EXPECT_FALSE(n->colour);
    EXPECT_TRUE(n->shape);
    EXPECT_EQ(names_colour_and_shape("a red object", "a red star"), std::nullopt);
}
