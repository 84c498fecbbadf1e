// glamm-studio: composes the main window and runs the Qt event loop.
#include "ui/main_window.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("GLaMM Studio");
    QApplication::setOrganizationName("GLaMM Studio");
    QApplication::setApplicationVersion(GLAMM_VERSION);

    QCommandLineParser parser;
    parser.setApplicationDescription("Grounded image chat with GLaMM");
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption image_option("image", "Open IMG at start.", "IMG");
    QCommandLineOption screenshot_option("screenshot", "Save a screenshot of the window to PNG.", "PNG");
    QCommandLineOption quit_option("quit", "Quit once the start-up work is done.");
    parser.addOptions({image_option, screenshot_option, quit_option});
    parser.process(app);

    MainWindow window;
    window.show();
    if (parser.isSet(image_option)) window.openImage(parser.value(image_option));
    if (parser.isSet(screenshot_option) || parser.isSet(quit_option)) {
        QTimer::singleShot(300, [&] {
            if (parser.isSet(screenshot_option)) window.grab().save(parser.value(screenshot_option));
            if (parser.isSet(quit_option)) QApplication::quit();
        });
    }
    return app.exec();
}
