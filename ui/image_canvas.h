// ImageCanvas: the image with its mask overlays and region-prompt boxes (QGraphicsView). Scene
// coordinates are original-image pixels (the pixmap sits at the origin, unscaled), so boxes are
// kept in original-image pixels at any zoom.
#pragma once

#include <QGraphicsRectItem>
#include <QGraphicsView>
#include <QImage>
#include <QVector>

class QGraphicsPixmapItem;
class QUndoStack;
class ImageCanvas;

// A region prompt: numbered, coloured, movable, resizable from its corners, deletable.
class BoxItem : public QGraphicsRectItem {
public:
    BoxItem(const QRectF& rect, ImageCanvas* canvas);
    ~BoxItem() override;
    // Box items alive in this process (the undo commands and the scene share them: a check that
    // each is freed once).
    static int instances() { return instances_; }
    void setNumber(int number);
    int number() const { return number_; }
    // The box in original-image pixels (scene coordinates), clamped to the image.
    QRectF imageRect() const;

protected:
    void paint(QPainter* painter, const QStyleOptionGraphicsItem* option, QWidget* widget) override;
    void hoverMoveEvent(QGraphicsSceneHoverEvent* event) override;
    void mousePressEvent(QGraphicsSceneMouseEvent* event) override;
    void mouseMoveEvent(QGraphicsSceneMouseEvent* event) override;
    void mouseReleaseEvent(QGraphicsSceneMouseEvent* event) override;
    QVariant itemChange(GraphicsItemChange change, const QVariant& value) override;

private:
    // Which corners follow the mouse while resizing (none: moving).
    Qt::Edges edgesAt(const QPointF& pos) const;

    ImageCanvas* canvas_ = nullptr;
    int number_          = 0;
    Qt::Edges resizing_;
    QRectF before_; // scene rect when a move/resize started (for undo)
    static inline int instances_ = 0;
};

class ImageCanvas : public QGraphicsView {
    Q_OBJECT

public:
    explicit ImageCanvas(QWidget* parent = nullptr);
    ~ImageCanvas() override;

    // Shows `image` (original size), removing boxes and masks.
    void setImage(const QImage& image);
    QImage image() const { return image_; }
    bool hasImage() const { return !image_.isNull(); }

    // Region prompts, in original-image pixels, in number order.
    QVector<QRectF> boxes() const;
    // Adds a box (undoable); `rect` in original-image pixels.
    void addBox(const QRectF& rect);
    void clearBoxes();
    QUndoStack* undoStack() const { return undoStack_; }

    // Mask overlays (Grayscale8 masks of the image's size), coloured with `colors`.
    void setMasks(const QVector<QImage>& masks, const QVector<QColor>& colors);
    // Adds or replaces mask `index` as soon as it is decoded.
    void setMask(int index, const QImage& mask, const QColor& color);
    void clearMasks();
    int maskCount() const { return static_cast<int>(masks_.size()); }
    void setMaskVisible(int index, bool visible);
    bool isMaskVisible(int index) const;
    // Overall overlay opacity in [0, 1].
    void setOverlayOpacity(double opacity);
    double overlayOpacity() const { return opacity_; }
    // Highlights one mask (the others dim); -1: none highlighted, all at the same opacity.
    void setHighlightedMask(int index);
    int highlightedMask() const { return highlighted_; }
    // The effective opacity of mask `index` now (for tests and the legend).
    double maskOpacity(int index) const;
    // The visible mask under image pixel `pos` (the last one drawn on top), or -1.
    int maskAt(const QPointF& imagePos) const;

    // When on (the default), dragging with the left button on the image draws a box; when off it
    // pans. The middle button always pans.
    void setDrawingBoxes(bool on);
    bool isDrawingBoxes() const { return drawing_; }
    double zoom() const;
    void setZoom(double zoom);

public slots:
    void zoomIn();
    void zoomOut();
    void fitToWindow();
    void actualSize();
    void deleteSelectedBoxes();

signals:
    void boxesChanged();
    void maskClicked(int index);
    void zoomChanged(double zoom);
    void imageDropped(const QString& path);

protected:
    void wheelEvent(QWheelEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dragMoveEvent(QDragMoveEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    friend class BoxItem;
    friend class AddBoxCommand;
    friend class RemoveBoxesCommand;
    friend class ChangeBoxCommand;
    void renumberBoxes();
    void updateMaskOpacities();
    QList<BoxItem*> boxItems() const;
    void boxGeometryEdited(BoxItem* box, const QRectF& before);

    QGraphicsScene* scene_       = nullptr;
    QGraphicsPixmapItem* pixmap_ = nullptr;
    QImage image_;
    QList<BoxItem*> boxes_; // in number order
    QVector<QImage> masks_;
    QVector<QGraphicsPixmapItem*> maskItems_;
    QVector<bool> maskVisible_;
    double opacity_        = 0.55;
    int highlighted_       = -1;
    bool drawing_          = true;
    bool fitting_          = true; // follow the window size until the user zooms
    QUndoStack* undoStack_ = nullptr;

    // Mouse interaction state.
    enum class Drag { None, Box, Pan } drag_ = Drag::None;
    QPointF dragStart_; // image pixels
    QPoint panLast_;    // viewport pixels
    QGraphicsRectItem* rubberBand_ = nullptr;
};
