#include "io/image_file.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace glamm {

Image load_image(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail("cannot open image ", path, ": no such file");
    if (std::filesystem::is_directory(path, ec)) fail("cannot open image ", path, ": it is a folder");
    {
        std::ifstream probe(path, std::ios::binary);
        if (!probe) fail("cannot open image ", path, ": ", std::strerror(errno));
    }
    cv::Mat bgr;
    try {
        bgr = cv::imread(path, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
        fail("cannot decode image ", path, ": ", e.what());
    }
    if (bgr.empty())
        fail("cannot decode image ", path,
             ": not an image in a format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP, ...), or corrupt");
    if (static_cast<int64_t>(bgr.cols) * bgr.rows > kMaxImagePixels)
        fail("image ", path, " is ", bgr.cols, "x", bgr.rows, " pixels, more than the ",
             kMaxImagePixels, " this program accepts");
    if (bgr.depth() != CV_8U) bgr.convertTo(bgr, CV_8U);
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    Image image;
    image.width  = rgb.cols;
    image.height = rgb.rows;
    image.rgb.resize(static_cast<size_t>(image.width * image.height * 3));
    for (int y = 0; y < rgb.rows; ++y)
        std::memcpy(image.rgb.data() + static_cast<size_t>(y) * image.width * 3, rgb.ptr(y),
                    static_cast<size_t>(image.width) * 3);
    return image;
}

void save_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height,
              int channels) {
    if (channels != 1 && channels != 3) fail("save_png: channels must be 1 or 3");
    cv::Mat mat(static_cast<int>(height), static_cast<int>(width), channels == 3 ? CV_8UC3 : CV_8UC1,
                const_cast<uint8_t*>(pixels));
    cv::Mat out;
    if (channels == 3) cv::cvtColor(mat, out, cv::COLOR_RGB2BGR);
    else out = mat;
    std::vector<uchar> bytes;
    if (!cv::imencode(".png", out, bytes)) fail("cannot encode PNG for ", path);
    AtomicFile file(path);
    file.write(bytes.data(), bytes.size());
    file.commit();
}

} // namespace glamm
