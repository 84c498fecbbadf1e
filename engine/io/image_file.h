// Image files in and out (OpenCV imgcodecs; PPM/PGM only in a build without OpenCV), with the reference's conventions: cv2.imread
// (EXIF orientation applied, alpha dropped, 8-bit) then BGR -> RGB.
#pragma once

#include "vision/image.h"

#include <string>

namespace glamm {

// Largest image accepted, in pixels (about 16k x 16k): bigger files are refused with a clear
// message instead of exhausting memory.
constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

// Reads an image file as RGB8. Throws Error naming the file when it is missing, unreadable, not
// an image, or larger than kMaxImagePixels.
Image load_image(const std::string& path);

// Reads a binary PPM (P6) or PGM (P5) file with maxval 255 as RGB8, without OpenCV: the image
// format of builds made without it (GPU servers; `python3 -c "from PIL import Image;
// Image.open('a.png').convert('RGB').save('a.ppm')"` makes one). Throws Error like load_image.
Image read_ppm(const std::string& path);

// Writes RGB8 (3 channels) or grey (1 channel, `rgb` holding width*height bytes) as PNG,
// atomically.
void save_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height,
              int channels);

} // namespace glamm
