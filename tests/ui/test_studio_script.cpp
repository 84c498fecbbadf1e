// The scriptable start of glamm-studio (offscreen): --model --vision-tower --image --answer
// --screenshot --quit prints the answer and saves a screenshot in which both phrases appear in
// their masks' colours; a bad model folder exits non-zero with the reason.
#include "ui/image_adapter.h"

#include "ui_test_support.h"

#include <QImage>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

class TestStudioScript : public QObject {
    Q_OBJECT

private:
    static QString studio() { return QStringLiteral(GLAMM_BIN_DIR "/glamm-studio"); }
    // Pixels of `image` exactly of colour `c`.
    static int countColor(const QImage& image, const QColor& c) {
        const QImage rgb = image.convertToFormat(QImage::Format_RGB32);
        int n            = 0;
        for (int y = 0; y < rgb.height(); ++y) {
            const auto* line = reinterpret_cast<const QRgb*>(rgb.constScanLine(y));
            for (int x = 0; x < rgb.width(); ++x) n += (line[x] & 0xffffff) == (c.rgb() & 0xffffff);
        }
        return n;
    }

private slots:
    void screenshotShowsColouredPhrases() {
        QTemporaryDir dir;
        const QString shot = dir.filePath(QStringLiteral("shot.png"));
        QProcess studioProcess;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), dir.path());
        studioProcess.setProcessEnvironment(env);
        studioProcess.start(studio(),
                            {QStringLiteral("--model"), uitest::tinyModelDir(),
                             QStringLiteral("--vision-tower"), uitest::tinyClipDir(),
                             QStringLiteral("--image"), uitest::tinyCase(QStringLiteral("gcg.png")),
                             QStringLiteral("--answer"), QString::fromUtf8(uitest::kGcgAnswer),
                             QStringLiteral("--screenshot"), shot, QStringLiteral("--quit")});
        QVERIFY(studioProcess.waitForFinished(180000));
        const QString out = QString::fromUtf8(studioProcess.readAllStandardOutput());
        QVERIFY2(studioProcess.exitCode() == 0, qPrintable(studioProcess.readAllStandardError()));
        QVERIFY(out.contains(QStringLiteral("A red circle next to a blue square")));
        const QImage image(shot);
        QVERIFY(!image.isNull());
        QVERIFY(image.width() >= 800 && image.height() >= 500);
        // The phrases are drawn in (a darker shade of) their masks' palette colours.
        const int red   = countColor(image, maskColor(0).darker(135)),
                  green = countColor(image, maskColor(1).darker(135));
        qInfo("phrase-colour pixels: mask 1 %d, mask 2 %d", red, green);
        QVERIFY(red > 20);
        QVERIFY(green > 20);
    }

    void badModelFolderExitsWithTheReason() {
        QTemporaryDir dir;
        QProcess studioProcess;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), dir.path());
        studioProcess.setProcessEnvironment(env);
        studioProcess.start(
            studio(), {QStringLiteral("--model"), dir.path(), QStringLiteral("--image"),
                       uitest::tinyCase(QStringLiteral("gcg.png")), QStringLiteral("--quit")});
        QVERIFY(studioProcess.waitForFinished(60000));
        const QString err = QString::fromUtf8(studioProcess.readAllStandardError());
        QCOMPARE(studioProcess.exitCode(), 1);
        QVERIFY2(err.contains(QStringLiteral("not a GLaMM release")), qPrintable(err));
    }
};

QTEST_MAIN(TestStudioScript)
#include "test_studio_script.moc"
