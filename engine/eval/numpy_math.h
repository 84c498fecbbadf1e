// Float reductions in the order NumPy performs them (pairwise summation), so means computed here
// round exactly as np.mean / np.sum do in the Python reference scripts.
#pragma once

#include <cstddef>
#include <vector>

namespace glamm::eval {

// np.add.reduce over a contiguous float64 array: blocks of up to 128 summed with 8 interleaved
// accumulators, longer arrays split in halves (numpy/core/src/umath/loops_utils.h.src).
double numpy_sum(const double* values, size_t n);
double numpy_sum(const std::vector<double>& values);
// np.mean: numpy_sum / n; NaN for an empty array (NumPy warns and returns nan).
double numpy_mean(const std::vector<double>& values);

} // namespace glamm::eval
