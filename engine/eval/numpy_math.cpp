#include "eval/numpy_math.h"

#include <limits>

namespace glamm::eval {

namespace {
// NumPy's PW_BLOCKSIZE and its unroll width.
constexpr size_t kPairwiseBlock = 128;
constexpr size_t kUnroll        = 8;
} // namespace

// ref: numpy numpy/core/src/umath/loops_utils.h.src (pairwise_sum)
double numpy_sum(const double* a, size_t n) {
    if (n < kUnroll) {
        double res = 0.;
        for (size_t i = 0; i < n; ++i) res += a[i];
        return res;
    }
    if (n <= kPairwiseBlock) {
        double r[kUnroll];
        for (size_t j = 0; j < kUnroll; ++j) r[j] = a[j];
        size_t i = kUnroll;
        for (; i < n - (n % kUnroll); i += kUnroll)
            for (size_t j = 0; j < kUnroll; ++j) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % kUnroll;
    return numpy_sum(a, n2) + numpy_sum(a + n2, n - n2);
}

double numpy_sum(const std::vector<double>& values) {
    return numpy_sum(values.data(), values.size());
}

double numpy_mean(const std::vector<double>& values) {
    if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
    return numpy_sum(values) / static_cast<double>(values.size());
}

} // namespace glamm::eval
