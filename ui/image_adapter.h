// The one place that converts between engine values (glamm::Image, glamm::Mask, palette) and Qt
// images and colours.
#pragma once

#include "engine/session.h"

#include <QColor>
#include <QImage>

// The palette colour of mask `index` (engine/io/result_writer.h mask_color), so phrases, overlays
// and exported files agree.
QColor maskColor(int index);

// RGB8 engine image -> QImage (Format_RGB888, deep copy).
QImage toQImage(const glamm::Image& image);

// Any QImage -> RGB8 engine image (alpha dropped).
glamm::Image toEngineImage(const QImage& image);

// An engine mask -> Format_Grayscale8 with 0 / 255.
QImage toMaskImage(const glamm::Mask& mask);

// A Grayscale8 mask -> ARGB32 premultiplied: `color` where the mask is set, transparent elsewhere.
QImage colorizeMask(const QImage& mask, const QColor& color);
