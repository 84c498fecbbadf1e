// Value types that cross the GUI <-> worker thread boundary (queued signals copy them), and the
// grounded phrase shared by the answer view, the phrase list and the canvas.
#pragma once

#include <QColor>
#include <QImage>
#include <QMetaType>
#include <QRectF>
#include <QString>
#include <QVector>

#include <memory>

namespace glamm {
struct GroundedAnswer;
}

// Where the model is and how to run it; remembered with QSettings by SettingsDialog.
struct ModelSettings {
    QString modelDir;       // GLaMM release folder
    QString visionTowerDir; // CLIP folder; empty: the one named in config.json
    QString device     = QStringLiteral("cpu");
    QString dtype      = QStringLiteral("f32");
    QString quantize; // "int8": the language model's linears as int8 (CPU); empty: as stored
    int maxNewTokens   = 512;
    double temperature = 0.0; // 0: greedy
    double topP        = 1.0;
};

// The tasks offered as prompt presets (same order as glamm::Task).
enum class StudioTask { GroundedCaption, ReferringSegmentation, RegionCaption, ImageCaption, Chat };

// One question about the current image.
struct AskRequest {
    StudioTask task = StudioTask::Chat;
    QString text;          // the user's words (may be empty for the caption presets)
    QVector<QRectF> boxes; // region prompts in original-image pixels, in order
    QString forcedAnswer;  // non-empty: teacher-forced scoring of this answer, no generation
    // Numbered from 1 by whoever sends it (0: unnumbered), so that SessionWorker::stopAsksThrough
    // can stop it even before the worker picks it up.
    quint64 id         = 0;
    int maxNewTokens   = 512;
    double temperature = 0.0;
    double topP        = 1.0;
};

// A grounded phrase: a character range of StudioAnswer::text and the mask it refers to.
struct GroundedPhrase {
    QString text;
    int begin = -1, end = -1; // QString (UTF-16) offsets into the answer text; -1: a bare mask
    int mask = -1;            // index into StudioAnswer::masks, -1 when it has no [SEG]
    QColor color;             // the mask's palette colour (invalid when mask < 0)
};

// A finished (or cancelled) answer.
struct StudioAnswer {
    QString question; // what was asked, as shown in the conversation
    QString text;     // markup removed
    QString rawText;  // with <p> </p> [SEG]
    QVector<GroundedPhrase> phrases;
    QVector<QImage> masks; // Format_Grayscale8, 0 or 255, original image size
    QVector<QRectF> boxes;
    QString timings; // one line for the status bar
    double totalMs      = 0;
    int generatedTokens = 0;
    bool cancelled      = false;
    bool forced         = false; // teacher-forced (scored, not generated): not a conversation turn
    // The engine's answer, for export (result.json, LabelMe); shared, never modified.
    std::shared_ptr<const glamm::GroundedAnswer> engineAnswer;
};

Q_DECLARE_METATYPE(ModelSettings)
Q_DECLARE_METATYPE(AskRequest)
Q_DECLARE_METATYPE(StudioAnswer)

// Registers the types above for queued connections (call once, before connecting).
void registerStudioTypes();
