// MainWindow without a model: the phrase <-> mask selection is shared by the answer text, the
// phrase list and the canvas; a bad model folder shows what is missing. A fake answer is fed
// through the worker's answerReady signal (as the worker would send it).
#include "ui/answer_view.h"
#include "ui/image_adapter.h"
#include "ui/image_canvas.h"
#include "ui/main_window.h"
#include "ui/phrase_list_model.h"
#include "ui/session_worker.h"

#include "ui_test_support.h"

#include <QItemSelectionModel>
#include <QMessageBox>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

class TestMainWindow : public QObject {
    Q_OBJECT

private:
    // Two masks: the left half of rows 100-199 and the right half.
    static StudioAnswer fakeAnswer() {
        StudioAnswer a;
        a.text = QStringLiteral("A red circle next to a blue square.");
        QImage left(640, 480, QImage::Format_Grayscale8),
            right(640, 480, QImage::Format_Grayscale8);
        left.fill(0);
        right.fill(0);
        for (int y = 100; y < 200; ++y)
            for (int x = 0; x < 640; ++x) (x < 320 ? left : right).scanLine(y)[x] = 255;
        a.masks   = {left, right};
        a.phrases = {{QStringLiteral("A red circle"), 0, 12, 0, maskColor(0)},
                     {QStringLiteral("a blue square"), 21, 34, 1, maskColor(1)}};
        return a;
    }

private slots:
    void phraseAndMaskShareOneSelection() {
        MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QVERIFY(window.openImage(uitest::tinyCase(QStringLiteral("gcg.png"))));
        emit window.controller()->worker()->answerReady(fakeAnswer());
        QCOMPARE(window.phraseModel()->rowCount(), 2);
        QCOMPARE(window.canvas()->maskCount(), 2);

        // The answer shows each phrase in its mask's colour.
        const QString html = window.answerView()->toHtml();
        QVERIFY(html.contains(maskColor(0).darker(135).name()));
        QVERIFY(html.contains(maskColor(1).darker(135).name()));

        // Selecting a phrase (clicking its link) highlights its mask; the other dims.
        emit window.answerView()->anchorClicked(QUrl(QStringLiteral("phrase:1")));
        QCOMPARE(window.phraseSelection()->selectedRows().value(0).row(), 1);
        QCOMPARE(window.canvas()->highlightedMask(), 1);
        QVERIFY(window.canvas()->maskOpacity(1) > window.canvas()->maskOpacity(0));

        // Clicking a mask on the canvas selects its phrase.
        ImageCanvas* canvas = window.canvas();
        canvas->setZoom(1.0);
        canvas->centerOn(QPointF(100, 150));
        QTest::mouseClick(canvas->viewport(), Qt::LeftButton, Qt::NoModifier,
                          canvas->mapFromScene(QPointF(100, 150)));
        QCOMPARE(window.phraseSelection()->selectedRows().value(0).row(), 0);
        QCOMPARE(canvas->highlightedMask(), 0);

        // Hovering a phrase highlights its mask while the pointer is on it.
        emit window.answerView()->highlighted(QUrl(QStringLiteral("phrase:1")));
        QCOMPARE(canvas->highlightedMask(), 1);
        emit window.answerView()->highlighted(QUrl());
        QCOMPARE(canvas->highlightedMask(), 0);

        // Clicking where there is no mask clears the selection.
        canvas->centerOn(QPointF(100, 400));
        QTest::mouseClick(canvas->viewport(), Qt::LeftButton, Qt::NoModifier,
                          canvas->mapFromScene(QPointF(100, 400)));
        QVERIFY(!window.phraseSelection()->hasSelection());
        QCOMPARE(canvas->highlightedMask(), -1);

        // Unticking a phrase hides its mask.
        window.phraseModel()->setData(window.phraseModel()->index(1), Qt::Unchecked,
                                      Qt::CheckStateRole);
        QVERIFY(!canvas->isMaskVisible(1));
        QVERIFY(canvas->isMaskVisible(0));
    }

    void badModelFolderShowsWhatIsMissing() {
        MainWindow window;
        window.show();
        QTemporaryDir dir;
        QSignalSpy errors(&window, &MainWindow::errorReported);
        ModelSettings settings;
        settings.modelDir = dir.path();
        window.loadModel(settings);
        QCOMPARE(errors.count(), 1);
        QVERIFY2(window.lastError().contains(QStringLiteral("config.json")),
                 qPrintable(window.lastError()));
        QVERIFY(window.lastError().contains(QStringLiteral("not a GLaMM release")));
        auto* box = window.findChild<QMessageBox*>(QStringLiteral("errorBox"));
        QVERIFY(box);
        QVERIFY(box->isVisible());
        QCOMPARE(box->text(), window.lastError());
        QVERIFY(!window.isModelLoaded());
    }

    void askingWithoutModelSaysSo() {
        MainWindow window;
        QSignalSpy errors(&window, &MainWindow::errorReported);
        window.ask(StudioTask::Chat, QStringLiteral("hello"));
        QCOMPARE(errors.count(), 1);
        QVERIFY(window.lastError().contains(QStringLiteral("no model")));
    }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
