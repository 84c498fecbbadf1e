// ImageCanvas: boxes drawn with the mouse land in original-image pixels at any zoom; undo/redo
// and Delete; mask hit-testing, visibility and highlight.
#include "ui/image_canvas.h"

#include <QScrollBar>
#include <QSignalSpy>
#include <QTest>
#include <QUndoStack>

class TestImageCanvas : public QObject {
    Q_OBJECT

private:
    // Drags from image pixel `a` to image pixel `b` with the left button.
    static void drag(ImageCanvas& canvas, QPointF a, QPointF b) {
        canvas.centerOn((a + b) / 2);
        const QPoint pa = canvas.mapFromScene(a), pb = canvas.mapFromScene(b);
        QTest::mousePress(canvas.viewport(), Qt::LeftButton, Qt::NoModifier, pa);
        QTest::mouseMove(canvas.viewport(), (pa + pb) / 2);
        QTest::mouseMove(canvas.viewport(), pb);
        QTest::mouseRelease(canvas.viewport(), Qt::LeftButton, Qt::NoModifier, pb);
    }
    static QImage testImage() {
        QImage image(640, 480, QImage::Format_RGB888);
        image.fill(Qt::darkGray);
        return image;
    }

private slots:
    void drawnBoxIsInImagePixelsAtEveryZoom_data() {
        QTest::addColumn<double>("zoom");
        QTest::newRow("25%") << 0.25;
        QTest::newRow("50%") << 0.5;
        QTest::newRow("100%") << 1.0;
        QTest::newRow("250%") << 2.5;
        QTest::newRow("800%") << 8.0;
    }
    void drawnBoxIsInImagePixelsAtEveryZoom() {
        QFETCH(double, zoom);
        ImageCanvas canvas;
        canvas.resize(500, 400);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.setZoom(zoom);
        QCOMPARE(canvas.zoom(), zoom);
        const QRectF want(QPointF(120, 80), QPointF(300, 210));
        // At high zoom the drag must stay on screen: a smaller box around the same corner.
        const QRectF target = zoom > 2 ? QRectF(want.topLeft(), QSizeF(30, 20)) : want;
        drag(canvas, target.topLeft(), target.bottomRight());
        const QVector<QRectF> boxes = canvas.boxes();
        QCOMPARE(boxes.size(), 1);
        // One screen pixel is 1/zoom image pixels.
        const double tolerance = 1.0 / zoom + 1e-6;
        qInfo("zoom %.2f: got (%.2f, %.2f, %.2f, %.2f), want (%.2f, %.2f, %.2f, %.2f)", zoom,
              boxes[0].left(), boxes[0].top(), boxes[0].right(), boxes[0].bottom(), target.left(),
              target.top(), target.right(), target.bottom());
        QVERIFY(std::abs(boxes[0].left() - target.left()) <= tolerance);
        QVERIFY(std::abs(boxes[0].top() - target.top()) <= tolerance);
        QVERIFY(std::abs(boxes[0].right() - target.right()) <= tolerance);
        QVERIFY(std::abs(boxes[0].bottom() - target.bottom()) <= tolerance);
    }

    void boxesAreClampedToTheImage() {
        ImageCanvas canvas;
        canvas.resize(800, 700);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.setZoom(1.0);
        drag(canvas, QPointF(600, 400), QPointF(700, 520)); // past the right and bottom edges
        QCOMPARE(canvas.boxes().size(), 1);
        QCOMPARE(canvas.boxes()[0], QRectF(QPointF(600, 400), QPointF(640, 480)));
    }

    void undoRedoAndDelete() {
        ImageCanvas canvas;
        canvas.resize(800, 600);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.addBox(QRectF(10, 10, 100, 50));
        canvas.addBox(QRectF(200, 100, 60, 60));
        QCOMPARE(canvas.boxes().size(), 2);
        canvas.undoStack()->undo();
        QCOMPARE(canvas.boxes().size(), 1);
        canvas.undoStack()->redo();
        QCOMPARE(canvas.boxes().size(), 2);
        QCOMPARE(canvas.boxes()[1], QRectF(200, 100, 60, 60));

        // Select the first box by clicking it, delete it with the Delete key, undo brings it back.
        canvas.setZoom(1.0);
        canvas.centerOn(QPointF(60, 35));
        QTest::mouseClick(canvas.viewport(), Qt::LeftButton, Qt::NoModifier,
                          canvas.mapFromScene(QPointF(60, 35)));
        QTest::keyClick(&canvas, Qt::Key_Delete);
        QCOMPARE(canvas.boxes().size(), 1);
        QCOMPARE(canvas.boxes()[0], QRectF(200, 100, 60, 60));
        canvas.undoStack()->undo();
        QCOMPARE(canvas.boxes().size(), 2);
        QCOMPARE(canvas.boxes()[0], QRectF(10, 10, 100, 50));
    }

    void deletedBoxesAreFreedOnceWhenTheImageChanges() {
        // Add a box and delete it, undo and redo around it, then open another image and close
        // the canvas: each box item is freed exactly once. (When the undo stack was cleared, the
        // Add command used to free the box and the Delete command then read it to decide whether
        // to free it too: undefined behaviour, which a sanitizer build reports.)
        const int before = BoxItem::instances();
        {
            ImageCanvas canvas;
            canvas.setImage(testImage());
            canvas.addBox(QRectF(10, 10, 100, 50));
            canvas.addBox(QRectF(200, 100, 60, 60));
            canvas.clearBoxes();
            QCOMPARE(canvas.boxes().size(), 0);
            QCOMPARE(BoxItem::instances(), before + 2); // held by the applied Delete
            canvas.undoStack()->undo();                 // the Delete
            canvas.undoStack()->undo();                 // the second Add
            QCOMPARE(canvas.boxes().size(), 1);
            canvas.undoStack()->redo();
            canvas.clearBoxes(); // drops the undone first Delete, which holds nothing
            canvas.setImage(testImage());
            QCOMPARE(BoxItem::instances(), before);
            canvas.addBox(QRectF(5, 5, 20, 20));
            canvas.addBox(QRectF(50, 5, 20, 20));
            canvas.undoStack()->undo(); // one undone Add, one shown box at the canvas's end
            QCOMPARE(BoxItem::instances(), before + 2);
        }
        QCOMPARE(BoxItem::instances(), before);
    }

    void boxesMoveAndResizeInImagePixelsUndoably() {
        ImageCanvas canvas;
        canvas.resize(800, 600);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.setZoom(2.0);
        canvas.addBox(QRectF(QPointF(100, 100), QPointF(160, 140)));
        canvas.centerOn(QPointF(150, 130));
        QWidget* vp = canvas.viewport();

        // Drag the inside of the box by 20 screen pixels = 10 image pixels at 200%.
        const QPoint inside = canvas.mapFromScene(QPointF(130, 120));
        QTest::mousePress(vp, Qt::LeftButton, Qt::NoModifier, inside);
        QTest::mouseMove(vp, inside + QPoint(10, 10));
        QTest::mouseMove(vp, inside + QPoint(20, 20));
        QTest::mouseRelease(vp, Qt::LeftButton, Qt::NoModifier, inside + QPoint(20, 20));
        QCOMPARE(canvas.boxes().size(), 1);
        QCOMPARE(canvas.boxes()[0], QRectF(QPointF(110, 110), QPointF(170, 150)));

        // Drag the bottom-right corner by 40 screen pixels = 20 image pixels.
        const QPoint corner = canvas.mapFromScene(QPointF(170, 150));
        QTest::mousePress(vp, Qt::LeftButton, Qt::NoModifier, corner);
        QTest::mouseMove(vp, corner + QPoint(20, 20));
        QTest::mouseMove(vp, corner + QPoint(40, 40));
        QTest::mouseRelease(vp, Qt::LeftButton, Qt::NoModifier, corner + QPoint(40, 40));
        QCOMPARE(canvas.boxes()[0], QRectF(QPointF(110, 110), QPointF(190, 170)));

        canvas.undoStack()->undo();
        QCOMPARE(canvas.boxes()[0], QRectF(QPointF(110, 110), QPointF(170, 150)));
        canvas.undoStack()->undo();
        QCOMPARE(canvas.boxes()[0], QRectF(QPointF(100, 100), QPointF(160, 140)));
    }

    void masksHitTestHideAndHighlight() {
        ImageCanvas canvas;
        canvas.resize(800, 600);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.setZoom(1.0);
        QImage left(640, 480, QImage::Format_Grayscale8),
            right(640, 480, QImage::Format_Grayscale8);
        left.fill(0);
        right.fill(0);
        for (int y = 100; y < 200; ++y)
            for (int x = 0; x < 640; ++x) (x < 320 ? left : right).scanLine(y)[x] = 255;
        canvas.setMasks({left, right}, {Qt::red, Qt::green});
        QCOMPARE(canvas.maskAt(QPointF(50, 150)), 0);
        QCOMPARE(canvas.maskAt(QPointF(500, 150)), 1);
        QCOMPARE(canvas.maskAt(QPointF(500, 300)), -1);

        QSignalSpy clicked(&canvas, &ImageCanvas::maskClicked);
        canvas.centerOn(QPointF(500, 150));
        QTest::mouseClick(canvas.viewport(), Qt::LeftButton, Qt::NoModifier,
                          canvas.mapFromScene(QPointF(500, 150)));
        QCOMPARE(clicked.count(), 1);
        QCOMPARE(clicked.at(0).at(0).toInt(), 1);
        QCOMPARE(canvas.boxes().size(), 0); // a click is not a box

        canvas.setOverlayOpacity(0.5);
        canvas.setHighlightedMask(1);
        QVERIFY(canvas.maskOpacity(1) > canvas.maskOpacity(0));
        QVERIFY(canvas.maskOpacity(0) < 0.5);
        canvas.setHighlightedMask(-1);
        QCOMPARE(canvas.maskOpacity(0), 0.5);
        canvas.setMaskVisible(1, false);
        QCOMPARE(canvas.maskAt(QPointF(500, 150)), -1);
        QCOMPARE(canvas.maskOpacity(1), 0.0);
    }

    void wheelAndShortcutsZoom() {
        ImageCanvas canvas;
        canvas.resize(800, 600);
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        canvas.setImage(testImage());
        canvas.actualSize();
        QCOMPARE(canvas.zoom(), 1.0);
        canvas.zoomIn();
        QCOMPARE(canvas.zoom(), 1.25);
        canvas.zoomOut();
        QCOMPARE(canvas.zoom(), 1.0);
        canvas.fitToWindow();
        QVERIFY(canvas.zoom() > 1.0 && canvas.zoom() < 1.3); // 640x480 in ~800x600
    }
};

QTEST_MAIN(TestImageCanvas)
#include "test_image_canvas.moc"
