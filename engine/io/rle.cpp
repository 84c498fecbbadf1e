#include "io/rle.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace glamm {

// ref: cocodataset/cocoapi PythonAPI/common/maskApi.c (rleEncode, rleDecode, rleToString,
// rleFrString, rleArea, rleToBbox, rleIou, rleMerge, rleFrPoly)

int64_t Rle::area() const {
    int64_t a = 0;
    for (size_t i = 1; i < counts.size(); i += 2) a += counts[i];
    return a;
}

std::vector<double> Rle::bbox() const {
    // Runs are column-major: position p is (x = p / h, y = p % h).
    const size_t m = counts.size() & ~size_t(1); // an odd trailing run is zeros
    if (m == 0) return {0, 0, 0, 0};
    int64_t xs = width, ys = height, xe = 0, ye = 0, cc = 0, xp = 0;
    for (size_t j = 0; j < m; ++j) {
        cc += counts[j];
        const int64_t t = cc - (j % 2);
        const int64_t y = t % height, x = (t - y) / height;
        if (j % 2 == 0) {
            xp = x;
        } else if (xp < x) {
            ys = 0;
            ye = height - 1;
        }
        xs = std::min(xs, x);
        xe = std::max(xe, x);
        ys = std::min(ys, y);
        ye = std::max(ye, y);
    }
    return {double(xs), double(ys), double(xe - xs + 1), double(ye - ys + 1)};
}

Rle rle_encode(const uint8_t* mask, int64_t height, int64_t width) {
    Rle rle;
    rle.height       = height;
    rle.width        = width;
    uint8_t previous = 0;
    uint32_t run     = 0;
    for (int64_t x = 0; x < width; ++x)
        for (int64_t y = 0; y < height; ++y) {
            const uint8_t v = mask[y * width + x] ? 1 : 0;
            if (v != previous) {
                rle.counts.push_back(run);
                run      = 0;
                previous = v;
            }
            ++run;
        }
    rle.counts.push_back(run);
    return rle;
}

std::vector<uint8_t> rle_decode(const Rle& rle) {
    const int64_t h = rle.height, w = rle.width;
    std::vector<uint8_t> mask(static_cast<size_t>(h * w), 0);
    int64_t p = 0; // column-major position of the run's start
    bool ones = false;
    for (uint32_t run : rle.counts) {
        if (p + run > h * w) fail("RLE runs exceed the mask size");
        if (ones) { // runs of zeros are already there
            int64_t x = p / h, y = p % h;
            for (uint32_t k = 0; k < run; ++k) {
                mask[static_cast<size_t>(y * w + x)] = 1;
                if (++y == h) y = 0, ++x;
            }
        }
        p += run;
        ones = !ones;
    }
    return mask;
}

std::string rle_to_string(const Rle& rle) {
    std::string s;
    for (size_t i = 0; i < rle.counts.size(); ++i) {
        int64_t x = rle.counts[i];
        if (i > 2) x -= rle.counts[i - 2];
        bool more = true;
        while (more) {
            int64_t c = x & 0x1f;
            x >>= 5; // arithmetic shift, as the C code on signed long
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            s.push_back(static_cast<char>(c + 48));
        }
    }
    return s;
}

Rle rle_from_string(const std::string& s, int64_t height, int64_t width) {
    Rle rle;
    rle.height    = height;
    rle.width     = width;
    size_t p      = 0;
    int64_t total = 0;
    while (p < s.size()) {
        int64_t x = 0;
        int k     = 0;
        bool more = true;
        while (more) {
            if (p >= s.size()) fail("RLE string ends inside a count");
            const int64_t c = static_cast<int64_t>(static_cast<unsigned char>(s[p])) - 48;
            if (c < 0 || c > 63) fail("RLE string has an invalid character at ", p);
            if (k >= 12) fail("RLE string has an over-long count at ", p);
            x |= (c & 0x1f) << (5 * k);
            more = (c & 0x20) != 0;
            ++p;
            ++k;
            if (!more && (c & 0x10)) x |= static_cast<int64_t>(-1) * (int64_t(1) << (5 * k));
        }
        if (rle.counts.size() > 2) x += rle.counts[rle.counts.size() - 2];
        if (x < 0 || x > height * width) fail("RLE string has an invalid run length ", x);
        total += x;
        rle.counts.push_back(static_cast<uint32_t>(x));
    }
    if (total != height * width)
        fail("RLE runs add up to ", total, " pixels, the mask has ", height * width);
    return rle;
}

namespace {

// Walks the run lists of two masks of one size together: visit(length, in_a, in_b, last) for
// each stretch over which neither mask changes, in column-major order.
// ref: pycocotools maskApi.c rleMerge (the two-pointer loop)
template <typename Visit> void walk_runs(const Rle& a, const Rle& b, Visit&& visit) {
    size_t ia = 0, ib = 0;
    int64_t ca = a.counts.empty() ? 0 : a.counts[0], cb = b.counts.empty() ? 0 : b.counts[0];
    bool va = false, vb = false;
    int64_t left = 1;
    while (left > 0) {
        const int64_t c = std::min(ca, cb);
        const bool in_a = va, in_b = vb;
        ca -= c;
        if (!ca && ++ia < a.counts.size()) {
            ca = a.counts[ia];
            va = !va;
        }
        cb -= c;
        if (!cb && ++ib < b.counts.size()) {
            cb = b.counts[ib];
            vb = !vb;
        }
        left = ca + cb;
        visit(c, in_a, in_b, left == 0);
    }
}

int64_t intersection_area(const Rle& a, const Rle& b) {
    int64_t inter = 0;
    walk_runs(a, b, [&](int64_t length, bool in_a, bool in_b, bool) {
        if (in_a && in_b) inter += length;
    });
    return inter;
}

} // namespace

double rle_iou(const Rle& a, const Rle& b, bool crowd) {
    if (a.height != b.height || a.width != b.width) fail("rle_iou: masks of different sizes");
    const int64_t inter = intersection_area(a, b);
    const int64_t uni   = crowd ? a.area() : a.area() + b.area() - inter;
    return uni > 0 ? double(inter) / double(uni) : 0.0;
}

Rle rle_merge(const std::vector<Rle>& rles, bool intersect) {
    if (rles.empty()) return {};
    Rle result = rles[0];
    for (size_t n = 1; n < rles.size(); ++n) {
        const Rle& b = rles[n];
        if (b.height != result.height || b.width != result.width)
            fail("rle_merge: masks of different sizes");
        Rle merged;
        merged.height = result.height;
        merged.width  = result.width;
        bool value    = false; // runs alternate starting with zeros
        int64_t run   = 0;
        walk_runs(result, b, [&](int64_t length, bool in_a, bool in_b, bool last) {
            const bool v = intersect ? (in_a && in_b) : (in_a || in_b);
            if (v != value) {
                merged.counts.push_back(static_cast<uint32_t>(run));
                run   = 0;
                value = v;
            }
            run += length;
            if (last) merged.counts.push_back(static_cast<uint32_t>(run));
        });
        result = std::move(merged);
    }
    return result;
}

Rle rle_from_polygon(const std::vector<double>& xy, int64_t height, int64_t width) {
    if (xy.size() % 2 != 0) fail("polygon has an odd number of coordinates (", xy.size(), ")");
    // maskApi.c upsamples by this factor before walking the edges.
    constexpr double kScale = 5.0;
    const size_t k          = xy.size() / 2;
    const int h = static_cast<int>(height), w = static_cast<int>(width);
    // Vertices on the upsampled grid, closed (x[k] = x[0]); C truncation of v + 0.5.
    std::vector<int> x(k + 1), y(k + 1);
    for (size_t j = 0; j < k; ++j) {
        x[j] = static_cast<int>(kScale * xy[2 * j] + .5);
        y[j] = static_cast<int>(kScale * xy[2 * j + 1] + .5);
    }
    if (k > 0) {
        x[k] = x[0];
        y[k] = y[0];
    }
    // Dense points along every edge, stepping one unit along its major axis.
    std::vector<int> u, v;
    for (size_t j = 0; j < k; ++j) {
        int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
        const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
        const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip) {
            std::swap(xs, xe);
            std::swap(ys, ye);
        }
        const double s = dx >= dy ? double(ye - ys) / dx : double(xe - xs) / dy;
        if (dx >= dy) {
            for (int d = 0; d <= dx; ++d) {
                const int t = flip ? dx - d : d;
                u.push_back(t + xs);
                v.push_back(static_cast<int>(ys + s * t + .5));
            }
        } else {
            for (int d = 0; d <= dy; ++d) {
                const int t = flip ? dy - d : d;
                v.push_back(t + ys);
                u.push_back(static_cast<int>(xs + s * t + .5));
            }
        }
    }
    // Where the boundary crosses a pixel-centre column, keep the (downsampled) y: these are
    // the positions where the column-major scan toggles between outside and inside.
    std::vector<uint32_t> a;
    for (size_t j = 1; j < u.size(); ++j) {
        if (u[j] == u[j - 1]) continue;
        double xd = double(u[j] < u[j - 1] ? u[j] : u[j] - 1);
        xd        = (xd + .5) / kScale - .5;
        if (std::floor(xd) != xd || xd < 0 || xd > w - 1) continue;
        double yd = double(v[j] < v[j - 1] ? v[j] : v[j - 1]);
        yd        = (yd + .5) / kScale - .5;
        if (yd < 0)
            yd = 0;
        else if (yd > h)
            yd = h;
        yd = std::ceil(yd);
        a.push_back(static_cast<uint32_t>(static_cast<int>(xd) * h + static_cast<int>(yd)));
    }
    a.push_back(static_cast<uint32_t>(h * w));
    std::sort(a.begin(), a.end());
    // Positions -> run lengths; zero-length runs fold into the run two places back.
    uint32_t p = 0;
    for (auto& t : a) {
        const uint32_t next = t;
        t -= p;
        p = next;
    }
    Rle rle;
    rle.height = height;
    rle.width  = width;
    size_t j   = 0;
    rle.counts.push_back(a[j++]);
    while (j < a.size()) {
        if (a[j] > 0) {
            rle.counts.push_back(a[j++]);
        } else {
            ++j;
            if (j < a.size()) rle.counts.back() += a[j++];
        }
    }
    return rle;
}

Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t height,
                      int64_t width) {
    std::vector<Rle> parts;
    for (const auto& poly : polygons) parts.push_back(rle_from_polygon(poly, height, width));
    if (parts.empty()) return Rle{height, width, {static_cast<uint32_t>(height * width)}};
    return rle_merge(parts, /*intersect=*/false);
}

} // namespace glamm
