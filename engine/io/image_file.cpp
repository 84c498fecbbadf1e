#include "io/image_file.h"

#include "core/atomic_file.h"
#include "core/error.h"

#ifdef GLAMM_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace glamm {

Image read_ppm(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open image ", path, ": ", std::strerror(errno));
    // Header: magic, width, height, maxval, separated by whitespace and '#' comments, then one
    // whitespace byte before the samples (Netpbm).
    auto token = [&]() {
        std::string t;
        int c;
        while ((c = in.get()) != EOF) {
            if (c == '#') {
                while ((c = in.get()) != EOF && c != '\n') {
                }
                continue;
            }
            if (std::isspace(c)) {
                if (!t.empty()) break;
                continue;
            }
            t.push_back(static_cast<char>(c));
        }
        return t;
    };
    const std::string magic = token();
    if (magic != "P6" && magic != "P5")
        fail("cannot decode image ", path, ": not a binary PPM/PGM file (P6/P5)");
    int64_t dims[3] = {0, 0, 0};
    for (int64_t& d : dims) {
        const std::string t = token();
        if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos)
            fail("cannot decode image ", path, ": bad PPM header");
        d = std::stoll(t);
    }
    const int64_t width = dims[0], height = dims[1];
    if (dims[2] != 255) fail("cannot decode image ", path, ": only 8-bit PPM (maxval 255) is read");
    if (width <= 0 || height <= 0) fail("cannot decode image ", path, ": empty image");
    if (width * height > kMaxImagePixels)
        fail("image ", path, " is ", width, "x", height, " pixels, more than the ", kMaxImagePixels,
             " this program accepts");
    const int64_t channels = magic == "P6" ? 3 : 1;
    std::vector<uint8_t> samples(static_cast<size_t>(width * height * channels));
    in.read(reinterpret_cast<char*>(samples.data()), static_cast<std::streamsize>(samples.size()));
    if (in.gcount() != static_cast<std::streamsize>(samples.size()))
        fail("cannot decode image ", path, ": truncated (", in.gcount(), " of ", samples.size(),
             " sample bytes)");
    Image image;
    image.width  = width;
    image.height = height;
    if (channels == 3) {
        image.rgb = std::move(samples);
    } else {
        image.rgb.resize(samples.size() * 3);
        for (size_t i = 0; i < samples.size(); ++i)
            image.rgb[3 * i] = image.rgb[3 * i + 1] = image.rgb[3 * i + 2] = samples[i];
    }
    return image;
}

Image load_image(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail("cannot open image ", path, ": no such file");
    if (std::filesystem::is_directory(path, ec))
        fail("cannot open image ", path, ": it is a folder");
    {
        std::ifstream probe(path, std::ios::binary);
        if (!probe) fail("cannot open image ", path, ": ", std::strerror(errno));
    }
#ifndef GLAMM_HAVE_OPENCV
    return read_ppm(path); // the one format a build without OpenCV reads
#else
    cv::Mat bgr;
    try {
        bgr = cv::imread(path, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
        fail("cannot decode image ", path, ": ", e.what());
    }
    if (bgr.empty())
        fail("cannot decode image ", path,
             ": not an image in a format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP, ...), or "
             "corrupt");
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
#endif
}

void save_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height,
              int channels) {
    if (channels != 1 && channels != 3) fail("save_png: channels must be 1 or 3");
#ifndef GLAMM_HAVE_OPENCV
    fail("cannot write ", path, ": this glamm was built without OpenCV (a GPU-server build)");
#else
    cv::Mat mat(static_cast<int>(height), static_cast<int>(width),
                channels == 3 ? CV_8UC3 : CV_8UC1, const_cast<uint8_t*>(pixels));
    cv::Mat out;
    if (channels == 3)
        cv::cvtColor(mat, out, cv::COLOR_RGB2BGR);
    else
        out = mat;
    std::vector<uchar> bytes;
    if (!cv::imencode(".png", out, bytes)) fail("cannot encode PNG for ", path);
    AtomicFile file(path);
    file.write(bytes.data(), bytes.size());
    file.commit();
#endif
}

} // namespace glamm
