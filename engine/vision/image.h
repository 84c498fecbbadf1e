// The engine's image value type: 8-bit RGB, row-major, interleaved, original size.
#pragma once

#include <cstdint>
#include <vector>

namespace glamm {

struct Image {
    int64_t width  = 0;
    int64_t height = 0;
    std::vector<uint8_t> rgb; // [height, width, 3], row-major

    bool empty() const { return width == 0 || height == 0; }
    const uint8_t* pixel(int64_t x, int64_t y) const { return rgb.data() + (y * width + x) * 3; }
};

} // namespace glamm
