// Helpers for the Qt Test suite: fixture paths and the golden masks of the tiny gcg case (read
// with Qt alone, so the UI tests need no torch header).
#pragma once

#include <QByteArray>
#include <QFile>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QString>
#include <QVector>
#include <QtEndian>

namespace uitest {

inline QString dataPath(const QString& relative) {
    return QStringLiteral(GLAMM_TEST_DATA_DIR) + QLatin1Char('/') + relative;
}
inline QString tinyModelDir() {
    return dataPath(QStringLiteral("golden/tiny/glamm"));
}
inline QString tinyClipDir() {
    return dataPath(QStringLiteral("golden/tiny/clip"));
}
inline QString tinyCase(const QString& file) {
    return dataPath(QStringLiteral("golden/tiny/cases/") + file);
}

// The teacher-forced answer of the gcg case (cases/meta.json).
inline const char* kGcgAnswer =
    " <p> A red circle </p> [SEG] next to <p> a blue square </p> [SEG].";

// The u8 tensor `name` [K, H, W] of a safetensors file as K Grayscale8 images (0 / 255).
inline QVector<QImage> readMaskTensor(const QString& path, const QString& name) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) return {};
    const QByteArray bytes   = file.readAll();
    const quint64 headerSize = qFromLittleEndian<quint64>(bytes.constData());
    const QJsonObject header =
        QJsonDocument::fromJson(bytes.mid(8, static_cast<qsizetype>(headerSize))).object();
    const QJsonObject info = header.value(name).toObject();
    const QJsonArray shape = info.value(QStringLiteral("shape")).toArray();
    const qint64 begin     = info.value(QStringLiteral("data_offsets")).toArray().at(0).toInteger();
    if (shape.size() != 3 || info.value(QStringLiteral("dtype")).toString() != QLatin1String("U8"))
        return {};
    const int k = shape.at(0).toInt(), h = shape.at(1).toInt(), w = shape.at(2).toInt();
    const char* data = bytes.constData() + 8 + headerSize + begin;
    QVector<QImage> out;
    for (int i = 0; i < k; ++i) {
        QImage m(w, h, QImage::Format_Grayscale8);
        for (int y = 0; y < h; ++y) {
            const char* row = data + (static_cast<qint64>(i) * h + y) * w;
            uchar* dst      = m.scanLine(y);
            for (int x = 0; x < w; ++x) dst[x] = row[x] ? 255 : 0;
        }
        out.push_back(m);
    }
    return out;
}

// Share of pixels on which two masks agree.
inline double agreement(const QImage& a, const QImage& b) {
    if (a.size() != b.size()) return 0.0;
    qint64 same = 0;
    for (int y = 0; y < a.height(); ++y)
        for (int x = 0; x < a.width(); ++x)
            same += (a.constScanLine(y)[x] != 0) == (b.constScanLine(y)[x] != 0);
    return double(same) / (double(a.width()) * a.height());
}

} // namespace uitest
