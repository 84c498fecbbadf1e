// The main window of GLaMM Studio: the image canvas on the left, the conversation on the right.
#pragma once

#include <QMainWindow>

class QGraphicsScene;
class QGraphicsView;
class QGraphicsPixmapItem;
class QTextBrowser;
class QLineEdit;

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);

    // Shows `path` on the canvas; returns false (and tells the user) if it cannot be read.
    bool openImage(const QString& path);

private slots:
    void openImageDialog();

private:
    QGraphicsScene* scene_        = nullptr;
    QGraphicsView* canvas_        = nullptr;
    QGraphicsPixmapItem* pixmap_  = nullptr;
    QTextBrowser* conversation_   = nullptr;
    QLineEdit* prompt_            = nullptr;
};
