// Engine <-> Qt image conversions.
#include "ui/image_adapter.h"

#include "engine/io/result_writer.h"

#include <cstring>

QColor maskColor(int index) {
    const auto rgb = glamm::mask_color(static_cast<size_t>(index < 0 ? 0 : index));
    return QColor(rgb[0], rgb[1], rgb[2]);
}

QImage toQImage(const glamm::Image& image) {
    QImage out(static_cast<int>(image.width), static_cast<int>(image.height),
               QImage::Format_RGB888);
    const size_t row = static_cast<size_t>(image.width) * 3;
    for (int y = 0; y < out.height(); ++y)
        std::memcpy(out.scanLine(y), image.rgb.data() + y * row, row);
    return out;
}

glamm::Image toEngineImage(const QImage& image) {
    const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
    glamm::Image out;
    out.width        = rgb.width();
    out.height       = rgb.height();
    const size_t row = static_cast<size_t>(out.width) * 3;
    out.rgb.resize(row * static_cast<size_t>(out.height));
    for (int y = 0; y < rgb.height(); ++y)
        std::memcpy(out.rgb.data() + y * row, rgb.constScanLine(y), row);
    return out;
}

QImage toMaskImage(const glamm::Mask& mask) {
    QImage out(static_cast<int>(mask.width), static_cast<int>(mask.height),
               QImage::Format_Grayscale8);
    for (int y = 0; y < out.height(); ++y) {
        uchar* line        = out.scanLine(y);
        const uint8_t* src = mask.data.data() + static_cast<size_t>(y) * mask.width;
        for (int x = 0; x < out.width(); ++x) line[x] = src[x] ? 255 : 0;
    }
    return out;
}

QImage colorizeMask(const QImage& mask, const QColor& color) {
    QImage out(mask.size(), QImage::Format_ARGB32_Premultiplied);
    const QRgb on = qRgba(color.red(), color.green(), color.blue(), 255);
    for (int y = 0; y < mask.height(); ++y) {
        const uchar* src = mask.constScanLine(y);
        auto* dst        = reinterpret_cast<QRgb*>(out.scanLine(y));
        for (int x = 0; x < mask.width(); ++x) dst[x] = src[x] ? on : 0;
    }
    return out;
}
