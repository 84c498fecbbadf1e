#include "ui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QFileDialog>
#include <QGraphicsPixmapItem>
#include <QGraphicsScene>
#include <QGraphicsView>
#include <QImageReader>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTextBrowser>
#include <QVBoxLayout>

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(tr("GLaMM Studio"));

    scene_  = new QGraphicsScene(this);
    canvas_ = new QGraphicsView(scene_);
    canvas_->setDragMode(QGraphicsView::ScrollHandDrag);
    canvas_->setBackgroundBrush(QColor(48, 48, 48));

    auto* chat        = new QWidget;
    auto* chat_layout = new QVBoxLayout(chat);
    conversation_     = new QTextBrowser;
    conversation_->setPlaceholderText(tr("Open an image and ask about it."));
    prompt_ = new QLineEdit;
    prompt_->setPlaceholderText(tr("Ask about the image…"));
    chat_layout->addWidget(conversation_);
    chat_layout->addWidget(prompt_);

    auto* splitter = new QSplitter;
    splitter->addWidget(canvas_);
    splitter->addWidget(chat);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    setCentralWidget(splitter);

    QMenu* file      = menuBar()->addMenu(tr("&File"));
    QAction* open    = file->addAction(tr("&Open Image…"), this, &MainWindow::openImageDialog);
    open->setShortcut(QKeySequence::Open);
    QAction* quit    = file->addAction(tr("&Quit"), qApp, &QApplication::quit);
    quit->setShortcut(QKeySequence::Quit);

    statusBar()->showMessage(tr("Ready"));
    resize(1200, 760);
}

bool MainWindow::openImage(const QString& path) {
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QImage image = reader.read();
    if (image.isNull()) {
        QMessageBox::warning(this, tr("GLaMM Studio"),
                             tr("Cannot open %1: %2").arg(path, reader.errorString()));
        return false;
    }
    scene_->clear();
    pixmap_ = scene_->addPixmap(QPixmap::fromImage(image));
    scene_->setSceneRect(pixmap_->boundingRect());
    canvas_->fitInView(pixmap_, Qt::KeepAspectRatio);
    statusBar()->showMessage(tr("%1 (%2×%3)").arg(path).arg(image.width()).arg(image.height()));
    return true;
}

void MainWindow::openImageDialog() {
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Open Image"), QString(), tr("Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff)"));
    if (!path.isEmpty()) openImage(path);
}
