// ImageCanvas: zoom/pan, box drawing and editing (undoable), mask overlays with highlight.
#include "ui/image_canvas.h"

#include "ui/image_adapter.h"

#include <QDragEnterEvent>
#include <QGraphicsPixmapItem>
#include <QGraphicsSceneHoverEvent>
#include <QGraphicsSceneMouseEvent>
#include <QMimeData>
#include <QPainter>
#include <QScrollBar>
#include <QStyleOptionGraphicsItem>
#include <QUndoCommand>
#include <QUndoStack>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace {

constexpr double kZoomStep     = 1.25; // per wheel notch / Ctrl +
constexpr double kMinZoom      = 0.02;
constexpr double kMaxZoom      = 64.0;
constexpr double kHandlePixels = 8.0;  // corner grab distance, in screen pixels
constexpr double kMinBoxPixels = 3.0;  // smaller drags are clicks, in image pixels
constexpr double kDimFactor    = 0.25; // opacity of the other masks while one is highlighted

QColor boxColor(int number) {
    return QColor::fromHsv((number * 67 + 50) % 360, 210, 255);
}

} // namespace

// ---- undo commands --------------------------------------------------------------------------
// A box item belongs to the scene while it is shown. Out of the scene it belongs to exactly one
// command: the Add that is undone, or the Delete that is applied. (Both see a deleted box out of
// the scene, so "not in a scene" cannot decide who frees it: the stack deletes both commands.)

class AddBoxCommand : public QUndoCommand {
public:
    AddBoxCommand(ImageCanvas* canvas, const QRectF& rect)
        : QUndoCommand(QObject::tr("Add box")), canvas_(canvas), box_(new BoxItem(rect, canvas)) {}
    ~AddBoxCommand() override {
        if (!applied_) delete box_;
    }
    void redo() override {
        canvas_->scene_->addItem(box_);
        canvas_->boxes_.push_back(box_);
        canvas_->renumberBoxes();
        applied_ = true;
    }
    void undo() override {
        canvas_->boxes_.removeAll(box_);
        canvas_->scene_->removeItem(box_);
        canvas_->renumberBoxes();
        applied_ = false;
    }

private:
    ImageCanvas* canvas_;
    BoxItem* box_;
    bool applied_ = false; // owns box_ while not applied
};

class RemoveBoxesCommand : public QUndoCommand {
public:
    RemoveBoxesCommand(ImageCanvas* canvas, const QList<BoxItem*>& boxes)
        : QUndoCommand(QObject::tr("Delete box")), canvas_(canvas), boxes_(boxes) {
        for (BoxItem* b : boxes) positions_.push_back(canvas->boxes_.indexOf(b));
    }
    ~RemoveBoxesCommand() override {
        if (applied_) qDeleteAll(boxes_);
    }
    void redo() override {
        for (BoxItem* b : boxes_) {
            canvas_->boxes_.removeAll(b);
            canvas_->scene_->removeItem(b);
        }
        canvas_->renumberBoxes();
        applied_ = true;
    }
    void undo() override {
        for (int i = 0; i < boxes_.size(); ++i) {
            canvas_->scene_->addItem(boxes_[i]);
            canvas_->boxes_.insert(std::min<int>(positions_[i], canvas_->boxes_.size()), boxes_[i]);
        }
        canvas_->renumberBoxes();
        applied_ = false;
    }

private:
    ImageCanvas* canvas_;
    QList<BoxItem*> boxes_;
    QList<int> positions_;
    bool applied_ = false; // owns boxes_ while applied
};

class ChangeBoxCommand : public QUndoCommand {
public:
    ChangeBoxCommand(ImageCanvas* canvas, BoxItem* box, const QRectF& before, const QRectF& after)
        : QUndoCommand(QObject::tr("Move box")), canvas_(canvas), box_(box), before_(before),
          after_(after) {}
    void redo() override { apply(after_); }
    void undo() override { apply(before_); }

private:
    void apply(const QRectF& r) {
        box_->setPos(0, 0);
        box_->setRect(r);
        emit canvas_->boxesChanged();
    }
    ImageCanvas* canvas_;
    BoxItem* box_;
    QRectF before_, after_;
};

// ---- BoxItem --------------------------------------------------------------------------------

BoxItem::BoxItem(const QRectF& rect, ImageCanvas* canvas)
    : QGraphicsRectItem(rect), canvas_(canvas) {
    setFlags(ItemIsSelectable | ItemIsMovable | ItemSendsGeometryChanges | ItemIsFocusable);
    setAcceptHoverEvents(true);
    setZValue(10);
    ++instances_;
}

BoxItem::~BoxItem() {
    --instances_;
}

void BoxItem::setNumber(int number) {
    number_ = number;
    update();
}

QRectF BoxItem::imageRect() const {
    const QRectF bounds(QPointF(0, 0), QSizeF(canvas_->image().size()));
    return mapRectToScene(rect()).normalized().intersected(bounds);
}

void BoxItem::paint(QPainter* painter, const QStyleOptionGraphicsItem*, QWidget*) {
    const double scale = std::max(1e-6, painter->worldTransform().m11());
    const QColor color = boxColor(number_);
    QPen pen(color, isSelected() ? 3 : 2);
    pen.setCosmetic(true);
    if (isSelected()) pen.setStyle(Qt::DashLine);
    painter->setPen(pen);
    QColor fill = color;
    fill.setAlpha(28);
    painter->setBrush(fill);
    painter->drawRect(rect());

    // The number tag, a constant size on screen.
    QFont font = painter->font();
    font.setBold(true);
    font.setPixelSize(std::max(1, int(std::lround(13 / scale))));
    painter->setFont(font);
    const QString label = QString::number(number_);
    const QRectF tag(rect().topLeft(), QSizeF((12 + 8 * label.size()) / scale, 18 / scale));
    painter->fillRect(tag, color);
    painter->setPen(Qt::black);
    painter->drawText(tag, Qt::AlignCenter, label);

    if (isSelected()) {
        const double h = kHandlePixels / scale;
        painter->setPen(Qt::NoPen);
        painter->setBrush(color);
        for (const QPointF& c :
             {rect().topLeft(), rect().topRight(), rect().bottomLeft(), rect().bottomRight()})
            painter->drawRect(QRectF(c - QPointF(h / 2, h / 2), QSizeF(h, h)));
    }
}

Qt::Edges BoxItem::edgesAt(const QPointF& pos) const {
    const double scale = canvas_->zoom();
    const double grab  = kHandlePixels / std::max(1e-6, scale);
    Qt::Edges edges;
    const QRectF r = rect();
    if (std::abs(pos.x() - r.left()) <= grab) edges |= Qt::LeftEdge;
    if (std::abs(pos.x() - r.right()) <= grab) edges |= Qt::RightEdge;
    if (std::abs(pos.y() - r.top()) <= grab) edges |= Qt::TopEdge;
    if (std::abs(pos.y() - r.bottom()) <= grab) edges |= Qt::BottomEdge;
    const bool corner =
        (edges & (Qt::LeftEdge | Qt::RightEdge)) && (edges & (Qt::TopEdge | Qt::BottomEdge));
    return corner ? edges : Qt::Edges();
}

void BoxItem::hoverMoveEvent(QGraphicsSceneHoverEvent* event) {
    const Qt::Edges e = edgesAt(event->pos());
    if (!e)
        setCursor(Qt::SizeAllCursor);
    else if (e == (Qt::LeftEdge | Qt::TopEdge) || e == (Qt::RightEdge | Qt::BottomEdge))
        setCursor(Qt::SizeFDiagCursor);
    else
        setCursor(Qt::SizeBDiagCursor);
    QGraphicsRectItem::hoverMoveEvent(event);
}

void BoxItem::mousePressEvent(QGraphicsSceneMouseEvent* event) {
    before_   = mapRectToScene(rect());
    resizing_ = edgesAt(event->pos());
    if (resizing_) {
        setSelected(true);
        event->accept();
        return;
    }
    QGraphicsRectItem::mousePressEvent(event);
}

void BoxItem::mouseMoveEvent(QGraphicsSceneMouseEvent* event) {
    if (!resizing_) {
        QGraphicsRectItem::mouseMoveEvent(event);
        return;
    }
    QRectF r        = rect();
    const QPointF p = event->pos();
    if (resizing_ & Qt::LeftEdge) r.setLeft(p.x());
    if (resizing_ & Qt::RightEdge) r.setRight(p.x());
    if (resizing_ & Qt::TopEdge) r.setTop(p.y());
    if (resizing_ & Qt::BottomEdge) r.setBottom(p.y());
    setRect(r);
}

void BoxItem::mouseReleaseEvent(QGraphicsSceneMouseEvent* event) {
    QGraphicsRectItem::mouseReleaseEvent(event);
    resizing_          = Qt::Edges();
    const QRectF after = imageRect();
    if (after != before_) canvas_->boxGeometryEdited(this, before_);
}

QVariant BoxItem::itemChange(GraphicsItemChange change, const QVariant& value) {
    if (change == ItemPositionChange && canvas_ && canvas_->hasImage()) {
        // Keep the whole box on the image while it is moved.
        QPointF pos    = value.toPointF();
        const QRectF r = rect().translated(pos);
        const QRectF bounds(QPointF(0, 0), QSizeF(canvas_->image().size()));
        if (r.left() < bounds.left()) pos.rx() += bounds.left() - r.left();
        if (r.top() < bounds.top()) pos.ry() += bounds.top() - r.top();
        if (r.right() > bounds.right()) pos.rx() -= r.right() - bounds.right();
        if (r.bottom() > bounds.bottom()) pos.ry() -= r.bottom() - bounds.bottom();
        return pos;
    }
    return QGraphicsRectItem::itemChange(change, value);
}

// ---- ImageCanvas ----------------------------------------------------------------------------

ImageCanvas::ImageCanvas(QWidget* parent) : QGraphicsView(parent) {
    scene_ = new QGraphicsScene(this);
    setScene(scene_);
    setBackgroundBrush(QColor(40, 42, 46));
    setTransformationAnchor(AnchorUnderMouse);
    setResizeAnchor(AnchorViewCenter);
    setRenderHint(QPainter::SmoothPixmapTransform);
    setAcceptDrops(true);
    setFocusPolicy(Qt::StrongFocus);
    undoStack_ = new QUndoStack(this);
    connect(undoStack_, &QUndoStack::indexChanged, this, &ImageCanvas::boxesChanged);
}

// The undo commands refer to box items the scene owns: drop them before the scene goes.
ImageCanvas::~ImageCanvas() {
    undoStack_->blockSignals(true); // whoever listens may be half destroyed already
    undoStack_->clear();
}

void ImageCanvas::setImage(const QImage& image) {
    undoStack_->clear();
    boxes_.clear();
    masks_.clear();
    maskItems_.clear();
    maskVisible_.clear();
    highlighted_ = -1;
    scene_->clear();
    rubberBand_ = nullptr;
    image_      = image;
    pixmap_     = scene_->addPixmap(QPixmap::fromImage(image));
    pixmap_->setTransformationMode(Qt::SmoothTransformation);
    scene_->setSceneRect(QRectF(QPointF(0, 0), QSizeF(image.size())));
    fitToWindow();
    emit boxesChanged();
}

QVector<QRectF> ImageCanvas::boxes() const {
    QVector<QRectF> out;
    for (const BoxItem* b : boxes_) out.push_back(b->imageRect());
    return out;
}

void ImageCanvas::addBox(const QRectF& rect) {
    if (!hasImage()) return;
    const QRectF bounds(QPointF(0, 0), QSizeF(image_.size()));
    const QRectF r = rect.normalized().intersected(bounds);
    if (r.width() < kMinBoxPixels || r.height() < kMinBoxPixels) return;
    undoStack_->push(new AddBoxCommand(this, r));
}

void ImageCanvas::clearBoxes() {
    if (!boxes_.isEmpty()) undoStack_->push(new RemoveBoxesCommand(this, boxes_));
}

void ImageCanvas::deleteSelectedBoxes() {
    QList<BoxItem*> selected;
    for (BoxItem* b : boxes_)
        if (b->isSelected()) selected.push_back(b);
    if (!selected.isEmpty()) undoStack_->push(new RemoveBoxesCommand(this, selected));
}

void ImageCanvas::boxGeometryEdited(BoxItem* box, const QRectF& before) {
    const QRectF after = box->imageRect();
    undoStack_->push(new ChangeBoxCommand(this, box, before, after));
}

void ImageCanvas::renumberBoxes() {
    for (int i = 0; i < boxes_.size(); ++i) boxes_[i]->setNumber(i + 1);
    emit boxesChanged();
}

QList<BoxItem*> ImageCanvas::boxItems() const {
    return boxes_;
}

void ImageCanvas::setMasks(const QVector<QImage>& masks, const QVector<QColor>& colors) {
    clearMasks();
    for (int i = 0; i < masks.size(); ++i)
        setMask(i, masks[i], i < colors.size() ? colors[i] : Qt::red);
}

void ImageCanvas::setMask(int index, const QImage& mask, const QColor& color) {
    if (index < 0) return;
    while (masks_.size() <= index) {
        masks_.push_back(QImage());
        auto* item = scene_->addPixmap(QPixmap());
        item->setZValue(1 + masks_.size() * 1e-3);
        maskItems_.push_back(item);
        maskVisible_.push_back(true);
    }
    masks_[index] = mask;
    maskItems_[index]->setPixmap(QPixmap::fromImage(colorizeMask(mask, color)));
    updateMaskOpacities();
}

void ImageCanvas::clearMasks() {
    for (auto* item : maskItems_) {
        scene_->removeItem(item);
        delete item;
    }
    maskItems_.clear();
    masks_.clear();
    maskVisible_.clear();
    highlighted_ = -1;
}

void ImageCanvas::setMaskVisible(int index, bool visible) {
    if (index < 0 || index >= maskVisible_.size()) return;
    maskVisible_[index] = visible;
    updateMaskOpacities();
}

bool ImageCanvas::isMaskVisible(int index) const {
    return index >= 0 && index < maskVisible_.size() && maskVisible_[index];
}

void ImageCanvas::setOverlayOpacity(double opacity) {
    opacity_ = std::clamp(opacity, 0.0, 1.0);
    updateMaskOpacities();
}

void ImageCanvas::setHighlightedMask(int index) {
    highlighted_ = index >= 0 && index < masks_.size() ? index : -1;
    updateMaskOpacities();
}

double ImageCanvas::maskOpacity(int index) const {
    if (index < 0 || index >= masks_.size() || !maskVisible_[index]) return 0.0;
    if (highlighted_ < 0) return opacity_;
    // The highlighted mask stands out (at least 0.75), the others dim.
    return index == highlighted_ ? std::max(opacity_, 0.75) : opacity_ * kDimFactor;
}

void ImageCanvas::updateMaskOpacities() {
    for (int i = 0; i < maskItems_.size(); ++i) {
        maskItems_[i]->setOpacity(maskOpacity(i));
        // The highlighted mask is drawn above the others (masks may overlap).
        maskItems_[i]->setZValue(i == highlighted_ ? 2 : 1 + i * 1e-3);
        maskItems_[i]->setVisible(maskVisible_[i]);
    }
}

int ImageCanvas::maskAt(const QPointF& imagePos) const {
    const int x = int(std::floor(imagePos.x())), y = int(std::floor(imagePos.y()));
    for (int i = static_cast<int>(masks_.size()) - 1; i >= 0; --i) {
        const QImage& m = masks_[i];
        if (!maskVisible_[i] || m.isNull() || x < 0 || y < 0 || x >= m.width() || y >= m.height())
            continue;
        if (m.constScanLine(y)[x]) return i;
    }
    return -1;
}

void ImageCanvas::setDrawingBoxes(bool on) {
    drawing_ = on;
}

double ImageCanvas::zoom() const {
    return transform().m11();
}

void ImageCanvas::setZoom(double zoom) {
    fitting_ = false;
    zoom     = std::clamp(zoom, kMinZoom, kMaxZoom);
    setTransform(QTransform::fromScale(zoom, zoom));
    emit zoomChanged(zoom);
}

void ImageCanvas::zoomIn() {
    setZoom(zoom() * kZoomStep);
}
void ImageCanvas::zoomOut() {
    setZoom(zoom() / kZoomStep);
}
void ImageCanvas::actualSize() {
    setZoom(1.0);
}

void ImageCanvas::fitToWindow() {
    if (!pixmap_) return;
    fitInView(pixmap_, Qt::KeepAspectRatio);
    fitting_ = true;
    emit zoomChanged(zoom());
}

void ImageCanvas::resizeEvent(QResizeEvent* event) {
    QGraphicsView::resizeEvent(event);
    if (fitting_ && pixmap_) fitInView(pixmap_, Qt::KeepAspectRatio);
}

void ImageCanvas::wheelEvent(QWheelEvent* event) {
    if (!hasImage()) return;
    const double steps = event->angleDelta().y() / 120.0;
    if (steps == 0) return;
    setZoom(zoom() * std::pow(kZoomStep, steps));
    event->accept();
}

void ImageCanvas::mousePressEvent(QMouseEvent* event) {
    const bool pan =
        event->button() == Qt::MiddleButton || (event->button() == Qt::LeftButton && !drawing_);
    if (pan && hasImage()) {
        drag_    = Drag::Pan;
        panLast_ = event->position().toPoint();
        viewport()->setCursor(Qt::ClosedHandCursor);
        event->accept();
        return;
    }
    if (event->button() == Qt::LeftButton && hasImage()) {
        // On a box: let the box move/resize itself.
        QGraphicsItem* item = itemAt(event->position().toPoint());
        if (dynamic_cast<BoxItem*>(item)) {
            QGraphicsView::mousePressEvent(event);
            return;
        }
        scene_->clearSelection();
        drag_      = Drag::Box;
        dragStart_ = mapToScene(event->position().toPoint());
        event->accept();
        return;
    }
    QGraphicsView::mousePressEvent(event);
}

void ImageCanvas::mouseMoveEvent(QMouseEvent* event) {
    if (drag_ == Drag::Pan) {
        const QPoint p     = event->position().toPoint();
        const QPoint delta = p - panLast_;
        panLast_           = p;
        horizontalScrollBar()->setValue(horizontalScrollBar()->value() - delta.x());
        verticalScrollBar()->setValue(verticalScrollBar()->value() - delta.y());
        return;
    }
    if (drag_ == Drag::Box) {
        const QRectF r = QRectF(dragStart_, mapToScene(event->position().toPoint())).normalized();
        if (!rubberBand_) {
            rubberBand_ = scene_->addRect(r);
            QPen pen(QColor(255, 255, 255), 1, Qt::DashLine);
            pen.setCosmetic(true);
            rubberBand_->setPen(pen);
            rubberBand_->setZValue(20);
        }
        rubberBand_->setRect(r);
        return;
    }
    QGraphicsView::mouseMoveEvent(event);
}

void ImageCanvas::mouseReleaseEvent(QMouseEvent* event) {
    if (drag_ == Drag::Pan) {
        drag_ = Drag::None;
        viewport()->unsetCursor();
        return;
    }
    if (drag_ == Drag::Box) {
        drag_ = Drag::None;
        if (rubberBand_) {
            scene_->removeItem(rubberBand_);
            delete rubberBand_;
            rubberBand_ = nullptr;
        }
        const QPointF end = mapToScene(event->position().toPoint());
        const QRectF r    = QRectF(dragStart_, end).normalized();
        if (r.width() >= kMinBoxPixels && r.height() >= kMinBoxPixels) {
            addBox(r);
        } else {
            // A click: select the mask under it (or clear the selection).
            emit maskClicked(maskAt(end));
        }
        return;
    }
    QGraphicsView::mouseReleaseEvent(event);
}

void ImageCanvas::keyPressEvent(QKeyEvent* event) {
    if (event->matches(QKeySequence::Delete) || event->key() == Qt::Key_Backspace) {
        deleteSelectedBoxes();
        return;
    }
    QGraphicsView::keyPressEvent(event);
}

void ImageCanvas::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void ImageCanvas::dragMoveEvent(QDragMoveEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void ImageCanvas::dropEvent(QDropEvent* event) {
    const auto urls = event->mimeData()->urls();
    if (urls.isEmpty() || !urls.first().isLocalFile()) return;
    event->acceptProposedAction();
    emit imageDropped(urls.first().toLocalFile());
}
