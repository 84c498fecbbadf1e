// Port of Pillow's 8-bit resampler (ImagingResample for RGB, full-image box): per-axis filter
// coefficients, fixed point with 22 fractional bits, horizontal pass then vertical pass.
// W×H: width×height; rows are [W, 3] interleaved RGB.
#include "vision/resample.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace glamm {

namespace {

// ref: Pillow src/libImaging/Resample.c (9.4.0; behaviour unchanged through 12.3.0)

// Fractional bits of the fixed-point coefficients: 32-bit accumulator, minus 8 bits for the pixel
// value, minus 2 bits of headroom because a row of coefficients can sum below 0 or above 1
// (Pillow's PRECISION_BITS).
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int kChannels      = 3;
// Largest side and pixel count accepted for the output (sizes stay within Pillow's `int`).
constexpr int64_t kMaxSide   = int64_t(1) << 20;
constexpr int64_t kMaxPixels = int64_t(1) << 30;

// The coefficient arithmetic below must round exactly as Pillow's C does: no fused multiply-add.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

// Triangle filter, support 1 (PIL.Image.BILINEAR).
double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

// Cubic convolution with a = -0.5, support 2 (PIL.Image.BICUBIC). The expressions keep Pillow's
// evaluation order so the doubles are bit-identical.
double bicubic_filter(double x) {
    constexpr double a = -0.5; // Pillow's (and Keys') cubic coefficient
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct Filter {
    double (*function)(double);
    double support; // half-width at scale 1, in input pixels
};

// Resampling weights along one axis, for each output position: the first input index, the number
// of taps, and `ksize` fixed-point weights (zero beyond the taps).
struct AxisCoefficients {
    int ksize = 0;
    std::vector<int> first;       // [out]
    std::vector<int> count;       // [out]
    std::vector<int32_t> weights; // [out, ksize]
};

// ref: Resample.c precompute_coeffs + normalize_coeffs_8bpc, with box = (0, in_size).
AxisCoefficients precompute_coefficients(int in_size, int out_size, const Filter& filter) {
    // Pillow passes the box edges as float: in1 - in0 is computed in float, then widened.
    const float in0    = 0.0f;
    const float in1    = static_cast<float>(in_size);
    const double scale = static_cast<double>(in1 - in0) / out_size;
    // Downscaling widens the filter by the scale factor (antialiasing); upscaling does not.
    const double filterscale     = std::max(scale, 1.0);
    const double support         = filter.support * filterscale;
    const double inv_filterscale = 1.0 / filterscale;

    AxisCoefficients c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.first.resize(out_size);
    c.count.resize(out_size);
    c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
    std::vector<double> k(c.ksize);
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = in0 + (xx + 0.5) * scale;
        // Pillow rounds by +0.5 and a truncating cast (towards zero, then clamped).
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            const double w = filter.function((x + xmin - center + 0.5) * inv_filterscale);
            k[x]           = w;
            ww += w;
        }
        if (ww != 0.0)
            for (int x = 0; x < xmax; ++x) k[x] /= ww;
        // Normalised doubles -> fixed point, rounding half away from zero.
        int32_t* fixed = &c.weights[static_cast<size_t>(xx) * c.ksize];
        for (int x = 0; x < xmax; ++x)
            fixed[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits))
                                : static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
        c.first[xx] = xmin;
        c.count[xx] = xmax;
    }
    return c;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// Fixed-point accumulator -> uint8: drop the fraction (arithmetic shift), clamp to 0..255
// (Pillow's clip8 lookup table). Accumulators start at one half, so this rounds to nearest.
inline uint8_t clip8(int32_t accumulator) {
    const int32_t v = accumulator >> kPrecisionBits;
    return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// ref: Resample.c ImagingResampleHorizontal_8bpc. Resamples rows [row0, row0 + rows) of `src`
// ([src_h, src_w, 3]) along x into `dst` ([rows, out_w, 3]).
void resample_horizontal(const uint8_t* src, int64_t src_w, int64_t row0, int64_t rows,
                         const AxisCoefficients& c, uint8_t* dst) {
    const int64_t out_w = static_cast<int64_t>(c.first.size());
    for (int64_t yy = 0; yy < rows; ++yy) {
        const uint8_t* line = src + (row0 + yy) * src_w * kChannels;
        uint8_t* out        = dst + yy * out_w * kChannels;
        for (int64_t xx = 0; xx < out_w; ++xx) {
            const uint8_t* p = line + static_cast<int64_t>(c.first[xx]) * kChannels;
            const int32_t* k = &c.weights[xx * c.ksize];
            const int n      = c.count[xx];
            int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; ++x) {
                s0 += p[x * kChannels + 0] * k[x];
                s1 += p[x * kChannels + 1] * k[x];
                s2 += p[x * kChannels + 2] * k[x];
            }
            out[xx * kChannels + 0] = clip8(s0);
            out[xx * kChannels + 1] = clip8(s1);
            out[xx * kChannels + 2] = clip8(s2);
        }
    }
}

// ref: Resample.c ImagingResampleVertical_8bpc. `src` ([*, width, 3]) holds input rows from
// `row_shift` on (the horizontal pass keeps only the rows the vertical pass reads); writes
// `dst` ([out_h, width, 3]). Row-at-a-time accumulation: same integer sums, vectorisable.
void resample_vertical(const uint8_t* src, int64_t width, int64_t row_shift,
                       const AxisCoefficients& c, uint8_t* dst) {
    const int64_t out_h = static_cast<int64_t>(c.first.size());
    const int64_t row   = width * kChannels;
    std::vector<int32_t> accumulator(static_cast<size_t>(row));
    for (int64_t yy = 0; yy < out_h; ++yy) {
        std::fill(accumulator.begin(), accumulator.end(), 1 << (kPrecisionBits - 1));
        const int32_t* k = &c.weights[yy * c.ksize];
        for (int y = 0; y < c.count[yy]; ++y) {
            const uint8_t* line  = src + (c.first[yy] + y - row_shift) * row;
            const int32_t weight = k[y];
            int32_t* acc         = accumulator.data();
            for (int64_t i = 0; i < row; ++i) acc[i] += line[i] * weight;
        }
        uint8_t* out = dst + yy * row;
        for (int64_t i = 0; i < row; ++i) out[i] = clip8(accumulator[i]);
    }
}

} // namespace

Image resize_pillow(const Image& src, int64_t width, int64_t height, ResampleFilter filter) {
    if (src.empty()) fail("resize_pillow: the source image is empty");
    if (src.rgb.size() != static_cast<size_t>(src.width * src.height * kChannels))
        fail("resize_pillow: the source image holds ", src.rgb.size(), " bytes, not ", src.width,
             "x", src.height, "x", kChannels);
    if (src.width > kMaxSide || src.height > kMaxSide)
        fail("resize_pillow: source ", src.width, "x", src.height, " exceeds ", kMaxSide,
             " pixels per side");
    if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide ||
        width * height > kMaxPixels)
        fail("resize_pillow: cannot resize to ", width, "x", height, " (each side must be 1..",
             kMaxSide, ", at most ", kMaxPixels, " pixels)");

    // ref: _imaging.c _resize: a box of the output's size is a plain crop (here: a copy).
    if (width == src.width && height == src.height) return src;

    const Filter f = filter == ResampleFilter::Bicubic ? Filter{bicubic_filter, 2.0}
                                                       : Filter{bilinear_filter, 1.0};
    // ref: Resample.c ImagingResampleInner. With the full box, a pass runs iff its size changes.
    const bool need_horizontal = width != src.width;
    const bool need_vertical   = height != src.height;
    const AxisCoefficients vertical =
        precompute_coefficients(static_cast<int>(src.height), static_cast<int>(height), f);
    // Input rows the vertical pass reads: [ybox_first, ybox_last).
    const int64_t ybox_first = vertical.first.front();
    const int64_t ybox_last  = vertical.first.back() + vertical.count.back();

    Image temp;
    const uint8_t* rows = src.rgb.data();
    int64_t row_shift   = 0;
    if (need_horizontal) {
        const AxisCoefficients horizontal =
            precompute_coefficients(static_cast<int>(src.width), static_cast<int>(width), f);
        temp.width  = width;
        temp.height = ybox_last - ybox_first;
        temp.rgb.resize(static_cast<size_t>(temp.width * temp.height * kChannels));
        resample_horizontal(src.rgb.data(), src.width, ybox_first, temp.height, horizontal,
                            temp.rgb.data());
        rows      = temp.rgb.data();
        row_shift = ybox_first;
    }
    if (!need_vertical) return temp; // (equal sizes returned above, so temp was made)

    Image out;
    out.width  = width;
    out.height = height;
    out.rgb.resize(static_cast<size_t>(width * height * kChannels));
    resample_vertical(rows, width, row_shift, vertical, out.rgb.data());
    return out;
}

} // namespace glamm
