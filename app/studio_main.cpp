// glamm-studio: composes the main window and runs the Qt event loop. The scriptable start
// (--model … --image … --prompt … --answer … --screenshot … --quit) drives the window through its
// public API for demos, docs and tests.
#include "core/memory.h"
#include "ui/image_canvas.h"
#include "ui/main_window.h"
#include "ui/phrase_list_model.h"
#include "ui/session_worker.h"
#include "ui/settings_dialog.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QItemSelectionModel>
#include <QTimer>

#include <cstdio>

namespace {

// "x1,y1,x2,y2" in original-image pixels.
bool parseBox(const QString& text, QRectF* box) {
    const QStringList parts = text.split(QLatin1Char(','));
    if (parts.size() != 4) return false;
    double v[4];
    for (int i = 0; i < 4; ++i) {
        bool ok = false;
        v[i]    = parts[i].trimmed().toDouble(&ok);
        if (!ok) return false;
    }
    *box = QRectF(QPointF(v[0], v[1]), QPointF(v[2], v[3]));
    return v[2] > v[0] && v[3] > v[1];
}

StudioTask parseTask(const QString& name, bool* ok) {
    *ok = true;
    if (name == QLatin1String("gcg")) return StudioTask::GroundedCaption;
    if (name == QLatin1String("segment")) return StudioTask::ReferringSegmentation;
    if (name == QLatin1String("region")) return StudioTask::RegionCaption;
    if (name == QLatin1String("caption")) return StudioTask::ImageCaption;
    if (name == QLatin1String("chat")) return StudioTask::Chat;
    *ok = false;
    return StudioTask::Chat;
}

} // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("GLaMM Studio");
    QApplication::setOrganizationName("GLaMM Studio");
    QApplication::setApplicationVersion(GLAMM_VERSION);
    QApplication::setDesktopFileName("org.glammstudio.GlammStudio");
    registerStudioTypes();
    try {
        // The engine's tensors of one size come again with every box and token: kept in the heap.
        glamm::keep_freed_memory(glamm::FreedMemory::kept_up_to_32mb);
    } catch (const std::exception& e) { // a bad GLAMM_ALLOCATOR: the C library's defaults stay
        std::fprintf(stderr, "glamm-studio: %s\n", e.what());
    }

    QCommandLineParser parser;
    parser.setApplicationDescription("Grounded image chat with GLaMM");
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption modelOption("model", "GLaMM release folder (overrides the settings).",
                                   "DIR");
    QCommandLineOption visionOption("vision-tower", "CLIP folder (overrides the settings).", "DIR");
    QCommandLineOption imageOption("image", "Open IMG at start.", "IMG");
    QCommandLineOption boxOption("box", "A region prompt x1,y1,x2,y2 in image pixels (repeatable).",
                                 "BOX");
    QCommandLineOption taskOption("task",
                                  "Prompt preset: gcg, segment, region, caption, chat (default: "
                                  "region with boxes, else gcg).",
                                  "TASK");
    QCommandLineOption promptOption("prompt", "Ask TEXT once the image is encoded.", "TEXT");
    QCommandLineOption answerOption(
        "answer", "Teacher-force TEXT as the answer (masks only, no generation).", "TEXT");
    QCommandLineOption selectOption("select", "Select grounded phrase N (1-based) once answered.",
                                    "N");
    QCommandLineOption screenshotOption("screenshot",
                                        "Save a screenshot of the window to PNG when done.", "PNG");
    QCommandLineOption quitOption("quit", "Quit once the start-up work is done.");
    parser.addOptions({modelOption, visionOption, imageOption, boxOption, taskOption, promptOption,
                       answerOption, selectOption, screenshotOption, quitOption});
    parser.process(app);

    QVector<QRectF> boxes;
    for (const QString& text : parser.values(boxOption)) {
        QRectF box;
        if (!parseBox(text, &box)) {
            std::fprintf(stderr, "glamm-studio: --box %s: expected x1,y1,x2,y2 with x1<x2, y1<y2\n",
                         qPrintable(text));
            return 2;
        }
        boxes.push_back(box);
    }
    StudioTask task = boxes.isEmpty() ? StudioTask::GroundedCaption : StudioTask::RegionCaption;
    if (parser.isSet(taskOption)) {
        bool ok = false;
        task    = parseTask(parser.value(taskOption), &ok);
        if (!ok) {
            std::fprintf(stderr, "glamm-studio: unknown --task %s\n",
                         qPrintable(parser.value(taskOption)));
            return 2;
        }
    }

    MainWindow window;
    window.setTask(task);
    window.show();

    ModelSettings settings = SettingsDialog::load();
    if (parser.isSet(modelOption)) settings.modelDir = parser.value(modelOption);
    // No model configured yet: the bundled GLaMM-Shapes model, so a first launch works.
    settings.modelDir = SettingsDialog::resolvedModelDir(settings.modelDir);
    if (parser.isSet(visionOption)) settings.visionTowerDir = parser.value(visionOption);
    const bool scripted = parser.isSet(promptOption) || parser.isSet(answerOption) ||
                          parser.isSet(screenshotOption) || parser.isSet(quitOption);
    int exitCode     = 0;
    bool imageOpened = false;

    // The end of the scripted start: screenshot, then quit.
    auto finish = [&] {
        QTimer::singleShot(250, &window, [&] {
            if (parser.isSet(screenshotOption) &&
                !window.grab().save(parser.value(screenshotOption))) {
                std::fprintf(stderr, "glamm-studio: cannot write %s\n",
                             qPrintable(parser.value(screenshotOption)));
                exitCode = 1;
            }
            if (parser.isSet(quitOption)) QApplication::exit(exitCode);
        });
    };
    const bool wantsAnswer = parser.isSet(promptOption) || parser.isSet(answerOption);
    QObject::connect(&window, &MainWindow::errorReported, &window, [&](const QString& text) {
        std::fprintf(stderr, "glamm-studio: %s\n", qPrintable(text));
        if (scripted) {
            exitCode = 1;
            finish();
        }
    });
    QObject::connect(&window, &MainWindow::modelReady, &window, [&] {
        if (imageOpened) return; // shown before loading; the window encodes it now
        if (parser.isSet(imageOption) && window.openImage(parser.value(imageOption))) {
            imageOpened = true;
            for (const QRectF& box : boxes) window.canvas()->addBox(box);
        } else if (scripted) {
            finish();
        }
    });
    QObject::connect(&window, &MainWindow::imageReady, &window, [&] {
        if (wantsAnswer)
            window.ask(task, parser.value(promptOption), parser.value(answerOption));
        else if (scripted)
            finish();
    });
    QObject::connect(
        &window, &MainWindow::answerFinished, &window, [&](const StudioAnswer& answer) {
            if (!scripted) return;
            std::printf("%s\n", qPrintable(answer.text));
            if (parser.isSet(selectOption)) {
                const int row = parser.value(selectOption).toInt() - 1;
                if (row >= 0 && row < window.phraseModel()->rowCount())
                    window.phraseSelection()->setCurrentIndex(window.phraseModel()->index(row),
                                                              QItemSelectionModel::ClearAndSelect);
            }
            finish();
        });

    if (parser.isSet(imageOption) && !parser.isSet(modelOption)) {
        // Show the image at once; it is encoded when the model has loaded.
        imageOpened = window.openImage(parser.value(imageOption));
        for (const QRectF& box : boxes) window.canvas()->addBox(box);
    }
    if (!SettingsDialog::checkModelFolder(settings.modelDir).isEmpty() && !scripted) {
        // First launch or a moved model: say so and offer the settings.
        QTimer::singleShot(0, &window, [&] { window.showSettings(); });
    } else {
        window.loadModel(settings);
    }
    return app.exec();
}
