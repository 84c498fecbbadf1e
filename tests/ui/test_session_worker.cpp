// SessionWorker/SessionController with the tiny golden release: the int8 setting reaches the
// engine; a full teacher-forced run gives the golden phrases and masks; Stop cancels within a
// token, and an image encode (so does a newer image); a bad release reports the engine's error;
// the GUI thread stays responsive while the worker generates.
#include "ui/answer_view.h"
#include "ui/image_canvas.h"
#include "ui/main_window.h"
#include "ui/session_worker.h"
#include "ui/settings_dialog.h"

#include "ui_test_support.h"

#include <QElapsedTimer>
#include <QFile>
#include <QSemaphore>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

class TestSessionWorker : public QObject {
    Q_OBJECT

private:
    static ModelSettings tinySettings() {
        ModelSettings s;
        s.modelDir       = uitest::tinyModelDir();
        s.visionTowerDir = uitest::tinyClipDir();
        return s;
    }
    // Loads the tiny model and the gcg image into `controller`.
    static bool prepare(SessionController& controller) {
        QSignalSpy loaded(controller.worker(), &SessionWorker::modelLoaded);
        QSignalSpy encoded(controller.worker(), &SessionWorker::imageEncoded);
        QSignalSpy failed(controller.worker(), &SessionWorker::failed);
        emit controller.loadModelRequested(tinySettings());
        emit controller.imageFileRequested(uitest::tinyCase(QStringLiteral("gcg.png")));
        if (!encoded.wait(120000)) {
            qWarning() << "not encoded:" << failed;
            return false;
        }
        return loaded.count() == 1 && failed.isEmpty();
    }
    // Loads the tiny model into `window` (`maxNewTokens` per answer), then opens and encodes the
    // tiny golden case `image` unless it is empty.
    static bool prepareWindow(MainWindow& window, int maxNewTokens, const QString& image) {
        QSignalSpy loaded(&window, &MainWindow::modelReady);
        QSignalSpy ready(&window, &MainWindow::imageReady);
        ModelSettings settings = tinySettings();
        settings.maxNewTokens  = maxNewTokens;
        window.loadModel(settings);
        if (!loaded.wait(120000)) return false;
        return image.isEmpty() || (window.openImage(uitest::tinyCase(image)) && ready.wait(120000));
    }

private slots:
    // The settings' "Language model weights: int8" reaches the engine (the model describes its
    // language model as int8), and the dialog keeps the choice.
    void int8SettingLoadsAnInt8LanguageModel() {
        SessionController controller;
        QSignalSpy loaded(controller.worker(), &SessionWorker::modelLoaded);
        ModelSettings settings = tinySettings();
        settings.quantize      = QStringLiteral("int8");
        emit controller.loadModelRequested(settings);
        QVERIFY(loaded.wait(120000));
        const QString description = loaded.at(0).at(0).toString();
        QVERIFY2(description.contains(QStringLiteral("(language model linears int8)")),
                 qPrintable(description));
        SettingsDialog dialog;
        dialog.setSettings(settings);
        QCOMPARE(dialog.settings().quantize, QStringLiteral("int8"));
        settings.quantize.clear();
        dialog.setSettings(settings);
        QCOMPARE(dialog.settings().quantize, QString());
    }

    void teacherForcedRunGivesGoldenPhrasesAndMasks() {
        SessionController controller;
        QVERIFY(prepare(controller));
        QSignalSpy answers(controller.worker(), &SessionWorker::answerReady);
        QSignalSpy masks(controller.worker(), &SessionWorker::maskReady);
        AskRequest request;
        request.task         = StudioTask::GroundedCaption;
        request.forcedAnswer = QString::fromUtf8(uitest::kGcgAnswer);
        emit controller.askRequested(request);
        QVERIFY(answers.wait(120000));
        const auto answer = answers.at(0).at(0).value<StudioAnswer>();
        QCOMPARE(answer.text, QStringLiteral("A red circle next to a blue square ."));
        QCOMPARE(answer.phrases.size(), 2);
        QCOMPARE(answer.phrases[0].text, QStringLiteral("A red circle"));
        QCOMPARE(answer.phrases[1].text, QStringLiteral("a blue square"));
        for (const GroundedPhrase& p : answer.phrases)
            QCOMPARE(answer.text.mid(p.begin, p.end - p.begin), p.text);
        QCOMPARE(answer.phrases[0].mask, 0);
        QCOMPARE(answer.phrases[1].mask, 1);
        QVERIFY(answer.engineAnswer);
        // Each mask was also streamed as soon as it was decoded.
        QCOMPARE(masks.count(), 2);
        QCOMPARE(masks.at(1).at(0).toInt(), 1);

        const QVector<QImage> golden = uitest::readMaskTensor(
            uitest::tinyCase(QStringLiteral("gcg.safetensors")), QStringLiteral("masks"));
        QCOMPARE(answer.masks.size(), golden.size());
        for (int k = 0; k < golden.size(); ++k) {
            QCOMPARE(answer.masks[k].size(), golden[k].size());
            const double share = uitest::agreement(answer.masks[k], golden[k]);
            qInfo("mask %d: %.4f%% of pixels agree with the golden mask", k, 100 * share);
            QVERIFY(share >= 0.995);
        }
    }

    void stopCancelsWithinAToken() {
        SessionController controller;
        QVERIFY(prepare(controller));
        // Stop as soon as the first token arrives (on the worker thread, as the Stop button would
        // from the GUI thread: requestStop only sets an atomic flag).
        SessionWorker* worker = controller.worker();
        connect(
            worker, &SessionWorker::tokenGenerated, worker, [worker] { worker->requestStop(); },
            Qt::DirectConnection);
        QSignalSpy answers(worker, &SessionWorker::answerReady);
        QSignalSpy tokens(worker, &SessionWorker::tokenGenerated);
        AskRequest request;
        request.task         = StudioTask::Chat;
        request.text         = QStringLiteral("Describe the image in detail.");
        request.maxNewTokens = 200;
        emit controller.askRequested(request);
        QVERIFY(answers.wait(120000));
        const auto answer = answers.at(0).at(0).value<StudioAnswer>();
        qInfo("stopped after %d generated token(s), %d text delta(s)", answer.generatedTokens,
              int(tokens.count()));
        QVERIFY(answer.cancelled);
        QVERIFY(answer.generatedTokens <= 2);
    }

    void aStopSentRightAfterTheQuestionIsNeverLost() {
        // requestStop is cleared by ask() when it starts, so a Stop that reaches the worker before
        // the question does would be lost; stopAsksThrough(id) names the questions it stops.
        SessionController controller;
        QVERIFY(prepare(controller));
        QSignalSpy answers(controller.worker(), &SessionWorker::answerReady);
        AskRequest request;
        request.task         = StudioTask::Chat;
        request.text         = QStringLiteral("Describe the image in detail.");
        request.maxNewTokens = 200;
        request.id           = 1;
        emit controller.askRequested(request);
        controller.stopAsksThrough(1);
        QVERIFY(answers.wait(120000));
        const auto stopped = answers.at(0).at(0).value<StudioAnswer>();
        qInfo("stopped after %d generated token(s)", stopped.generatedTokens);
        QVERIFY(stopped.cancelled);

        // A later question (id 2) is not stopped by it.
        request.id           = 2;
        request.maxNewTokens = 4;
        emit controller.askRequested(request);
        QVERIFY(answers.wait(120000));
        const auto next = answers.at(1).at(0).value<StudioAnswer>();
        QVERIFY(!next.cancelled);
        QCOMPARE(next.generatedTokens, 4);
    }

    void aNewerImageOrAStopEndsTheEncode() {
        // The worker's slots called on this thread, in the order a queue would run them:
        // deterministic.
        SessionWorker worker;
        QSignalSpy loaded(&worker, &SessionWorker::modelLoaded);
        QSignalSpy encoded(&worker, &SessionWorker::imageEncoded);
        QSignalSpy stopped(&worker, &SessionWorker::imageStopped);
        QSignalSpy failed(&worker, &SessionWorker::failed);
        worker.loadModel(tinySettings());
        QCOMPARE(loaded.count(), 1);
        const QString gcg    = uitest::tinyCase(QStringLiteral("gcg.png"));
        const QString region = uitest::tinyCase(QStringLiteral("region.png"));

        // Two images asked for before the worker reaches the first: only the second is encoded.
        worker.noteImageRequested();
        worker.noteImageRequested();
        worker.setImageFile(gcg);
        QCOMPARE(stopped.count(), 1);
        QCOMPARE(encoded.count(), 0);
        worker.setImageFile(region);
        QCOMPARE(encoded.count(), 1);
        QCOMPARE(encoded.at(0).at(0).toSize(), QImage(region).size());

        // A Stop covers the encodes asked for until then, not later ones.
        worker.noteImageRequested();
        worker.stopImageEncodes();
        worker.setImageFile(gcg);
        QCOMPARE(stopped.count(), 2);
        worker.noteImageRequested();
        worker.setImageFile(gcg);
        QCOMPARE(encoded.count(), 2);
        QCOMPARE(encoded.at(1).at(0).toSize(), QImage(gcg).size());
        QVERIFY(failed.isEmpty());
    }

    void aStoppedEncodeIsRedoneBeforeTheNextQuestion() {
        MainWindow window;
        window.show();
        QVERIFY(prepareWindow(window, 4, QString()));
        QSignalSpy ready(&window, &MainWindow::imageReady);

        // The worker holds at the start of the encode until Stop has been pressed (a Stop before
        // the encode starts stops it too), so the encode is always caught.
        SessionWorker* worker = window.controller()->worker();
        QSemaphore stopPressed;
        const auto hold = connect(
            worker, &SessionWorker::progressed, worker,
            [&stopPressed](const QString& stage, double) {
                if (stage == QStringLiteral("encoding image")) stopPressed.tryAcquire(1, 60000);
            },
            Qt::DirectConnection);
        QSignalSpy stopped(worker, &SessionWorker::imageStopped);
        QVERIFY(window.openImage(uitest::tinyCase(QStringLiteral("gcg.png"))));
        window.stop();
        stopPressed.release();
        QVERIFY(stopped.wait(120000));
        disconnect(hold);
        QTRY_VERIFY(!window.isBusy());
        QCOMPARE(ready.count(), 0);

        // The engine holds no encoding of the shown image: the next question encodes it first.
        QSignalSpy finished(&window, &MainWindow::answerFinished);
        window.ask(StudioTask::Chat, QStringLiteral("Describe the image."));
        QVERIFY(finished.wait(120000));
        QCOMPARE(ready.count(), 1);
        QVERIFY(!finished.at(0).at(0).value<StudioAnswer>().cancelled);
        QVERIFY2(window.lastError().isEmpty(), qPrintable(window.lastError()));
    }

    void brokenReleaseReportsTheEngineError() {
        // Looks like a release at first glance (the GUI's check passes), but the config is broken:
        // the engine's message reaches the user instead of a crash.
        QTemporaryDir dir;
        for (const char* name : {"config.json", "tokenizer.model", "model.safetensors"}) {
            QFile f(dir.filePath(QString::fromLatin1(name)));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("{ not json");
        }
        MainWindow window;
        QSignalSpy errors(&window, &MainWindow::errorReported);
        ModelSettings settings;
        settings.modelDir = dir.path();
        window.loadModel(settings);
        QVERIFY(errors.wait(60000));
        qInfo("shown: %s", qPrintable(window.lastError()));
        QVERIFY(window.lastError().startsWith(QStringLiteral("Cannot load the model from")));
        QVERIFY(window.lastError().size() >
                QStringLiteral("Cannot load the model from ").size() + dir.path().size() + 4);
        QVERIFY(!window.isModelLoaded());
        QVERIFY(!window.isBusy());
    }

    void regionPromptThenFollowUpSendsOnlyNewBoxes() {
        MainWindow window;
        window.show();
        QVERIFY(prepareWindow(window, 8, QStringLiteral("region.png")));
        window.canvas()->addBox(QRectF(QPointF(480, 600), QPointF(820, 940)));

        QSignalSpy finished(&window, &MainWindow::answerFinished);
        window.ask(StudioTask::RegionCaption, QString());
        QVERIFY(finished.wait(120000));
        auto answer = finished.at(0).at(0).value<StudioAnswer>();
        QVERIFY(!answer.forced);
        QCOMPARE(answer.boxes.size(), 1);
        QCOMPARE(answer.boxes[0], QRectF(QPointF(480, 600), QPointF(820, 940)));

        // A follow-up keeps the conversation; the box is already part of it and is not sent again.
        window.ask(StudioTask::Chat, QStringLiteral("What colour is it?"));
        QVERIFY(finished.wait(120000));
        answer = finished.at(1).at(0).value<StudioAnswer>();
        QVERIFY2(window.lastError().isEmpty(), qPrintable(window.lastError()));
        QCOMPARE(answer.boxes.size(), 0);
        QVERIFY(
            window.answerView()->conversationText().contains(QStringLiteral("What colour is it?")));

        // A teacher-forced answer is scored, not kept (Session::score): its box is still unsent,
        // so the next question carries it again (as "region1 <bbox>").
        window.newConversation();
        window.ask(StudioTask::RegionCaption, QString(), QStringLiteral(" It is a blue square."));
        QVERIFY(finished.wait(120000));
        answer = finished.at(2).at(0).value<StudioAnswer>();
        QVERIFY(answer.forced);
        QCOMPARE(answer.text, QStringLiteral("It is a blue square."));
        QCOMPARE(answer.boxes.size(), 1);
        window.ask(StudioTask::Chat, QStringLiteral("What colour is it?"));
        QVERIFY(finished.wait(120000));
        answer = finished.at(3).at(0).value<StudioAnswer>();
        QVERIFY2(window.lastError().isEmpty(), qPrintable(window.lastError()));
        QCOMPARE(answer.boxes.size(), 1);
    }

    void anAnswerLeftBehindByANewImageIsStoppedAndDropped() {
        MainWindow window;
        window.show();
        constexpr int kMaxNewTokens = 160;
        QVERIFY(prepareWindow(window, kMaxNewTokens, QStringLiteral("gcg.png")));
        QSignalSpy ready(&window, &MainWindow::imageReady);

        // Ask, and open another image while the answer runs: the worker holds at its first token
        // until the window has opened the image (or stops before its prefill if it had not
        // started yet), so the question is always caught running.
        SessionWorker* worker = window.controller()->worker();
        QSemaphore imageOpened;
        const auto hold = connect(
            worker, &SessionWorker::tokenGenerated, worker,
            [&imageOpened] { imageOpened.tryAcquire(1, 60000); }, Qt::DirectConnection);
        QSignalSpy finished(&window, &MainWindow::answerFinished);
        QSignalSpy answered(worker, &SessionWorker::answerReady);
        window.ask(StudioTask::Chat, QStringLiteral("Describe the image in detail."));
        QVERIFY(window.isBusy());
        QVERIFY(window.openImage(uitest::tinyCase(QStringLiteral("region.png"))));
        imageOpened.release();
        QVERIFY(ready.wait(120000));
        disconnect(hold);
        QCOMPARE(answered.count(), 1); // the worker answered (stopped) before encoding the image
        QCOMPARE(finished.count(), 0); // ... and the window dropped it
        const auto stopped = answered.at(0).at(0).value<StudioAnswer>();
        QVERIFY(stopped.cancelled);
        QVERIFY(stopped.generatedTokens < kMaxNewTokens);
        QVERIFY(!window.isBusy());
        QCOMPARE(window.canvas()->maskCount(), 0);
        QVERIFY(!window.lastAnswer().engineAnswer);
        QVERIFY(window.answerView()->conversationText().isEmpty());
        QVERIFY(window.lastError().isEmpty());

        // The window answers the next question about the new image as usual.
        window.ask(StudioTask::Chat, QStringLiteral("Describe the image in detail."));
        QVERIFY(finished.wait(120000));
        QVERIFY(!finished.at(0).at(0).value<StudioAnswer>().cancelled);
        QVERIFY(!window.isBusy());
    }

    void guiThreadStaysResponsiveDuringGeneration() {
        MainWindow window;
        window.show();
        QVERIFY(prepareWindow(window, 160, QStringLiteral("gcg.png")));

        // A 10 ms timer on the GUI thread while the worker generates: no tick may be late by
        // more than 100 ms.
        QElapsedTimer clock;
        qint64 last = 0, worstGap = 0;
        int ticks = 0;
        QTimer timer;
        timer.setInterval(10);
        connect(&timer, &QTimer::timeout, this, [&] {
            const qint64 now = clock.elapsed();
            worstGap         = std::max(worstGap, now - last);
            last             = now;
            ++ticks;
        });
        QSignalSpy finished(&window, &MainWindow::answerFinished);
        clock.start();
        timer.start();
        window.ask(StudioTask::Chat, QStringLiteral("Describe the image in detail."));
        QVERIFY(window.isBusy());
        QVERIFY(finished.wait(120000));
        timer.stop();
        const auto answer = finished.at(0).at(0).value<StudioAnswer>();
        qInfo("generated %d tokens in %lld ms; %d timer ticks, worst gap %lld ms",
              answer.generatedTokens, clock.elapsed(), ticks, worstGap);
        QVERIFY(answer.generatedTokens > 10);
        QVERIFY(ticks > 5);
        QVERIFY(worstGap <= 10 + 100);
    }
};

QTEST_MAIN(TestSessionWorker)
#include "test_session_worker.moc"
