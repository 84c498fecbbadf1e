// MainWindow: composes canvas, answer view, phrase list and prompt; wires the shared selection
// and the worker's signals; menus, shortcuts, export and the help dialog.
#include "ui/main_window.h"

#include "engine/io/image_file.h"
#include "engine/io/result_writer.h"
#include "engine/session.h"
#include "ui/answer_view.h"
#include "ui/image_adapter.h"
#include "ui/image_canvas.h"
#include "ui/phrase_list_model.h"
#include "ui/session_worker.h"
#include "ui/settings_dialog.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImageReader>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QSaveFile>
#include <QSettings>
#include <QSlider>
#include <QSplitter>
#include <QStatusBar>
#include <QTableWidget>
#include <QToolBar>
#include <QUndoStack>
#include <QVBoxLayout>

#include <algorithm>

namespace {

constexpr int kMaxRecentFiles = 10;

struct Preset {
    StudioTask task;
    const char* name;
    const char* placeholder;
};
const Preset kPresets[] = {
    {StudioTask::GroundedCaption, QT_TRANSLATE_NOOP("MainWindow", "Grounded caption"),
     QT_TRANSLATE_NOOP("MainWindow", "Optional: your own wording (default: the GCG instruction)")},
    {StudioTask::ReferringSegmentation, QT_TRANSLATE_NOOP("MainWindow", "Segment…"),
     QT_TRANSLATE_NOOP("MainWindow", "What to segment, e.g. the red car")},
    {StudioTask::RegionCaption, QT_TRANSLATE_NOOP("MainWindow", "Describe region"),
     QT_TRANSLATE_NOOP("MainWindow", "Draw boxes on the image, then ask (optional wording)")},
    {StudioTask::ImageCaption, QT_TRANSLATE_NOOP("MainWindow", "Caption"),
     QT_TRANSLATE_NOOP("MainWindow", "Optional: your own wording")},
    {StudioTask::Chat, QT_TRANSLATE_NOOP("MainWindow", "Chat"),
     QT_TRANSLATE_NOOP("MainWindow", "Ask anything about the image…")},
};

} // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(tr("GLaMM Studio"));
    setWindowIcon(QIcon::fromTheme(QStringLiteral("glamm-studio"),
                                   QIcon(QStringLiteral(":/icons/glamm-studio.png"))));
    controller_ = new SessionController(this);

    canvas_ = new ImageCanvas;
    canvas_->setMinimumWidth(320);

    phraseModel_     = new PhraseListModel(this);
    phraseSelection_ = new QItemSelectionModel(phraseModel_, this);

    answerView_ = new AnswerView;
    answerView_->setPhraseModel(phraseModel_, phraseSelection_);

    phraseList_ = new QListView;
    phraseList_->setModel(phraseModel_);
    phraseList_->setSelectionModel(phraseSelection_);
    phraseList_->setSelectionMode(QAbstractItemView::SingleSelection);
    phraseList_->setMaximumHeight(120);
    phraseList_->setToolTip(
        tr("Grounded phrases: select one to highlight its mask; untick to hide it"));

    opacity_ = new QSlider(Qt::Horizontal);
    opacity_->setRange(0, 100);
    opacity_->setValue(int(canvas_->overlayOpacity() * 100));
    opacity_->setToolTip(tr("Overlay opacity"));
    auto* opacityRow    = new QWidget;
    auto* opacityLayout = new QHBoxLayout(opacityRow);
    opacityLayout->setContentsMargins(0, 0, 0, 0);
    opacityLayout->addWidget(new QLabel(tr("Masks")));
    opacityLayout->addStretch();
    opacityLayout->addWidget(new QLabel(tr("Opacity")));
    opacityLayout->addWidget(opacity_);

    task_ = new QComboBox;
    for (const Preset& p : kPresets) task_->addItem(tr(p.name), int(p.task));
    prompt_     = new QLineEdit;
    askButton_  = new QPushButton(tr("Ask"));
    stopButton_ = new QPushButton(tr("Stop"));
    stopButton_->setEnabled(false);
    auto* newButton = new QPushButton(tr("New"));
    newButton->setToolTip(tr("New conversation (keeps the image)"));
    // Two rows: the preset and New above, the question with Ask and Stop below.
    auto* promptRow    = new QWidget;
    auto* promptLayout = new QGridLayout(promptRow);
    promptLayout->setContentsMargins(0, 0, 0, 0);
    promptLayout->addWidget(new QLabel(tr("Task:")), 0, 0);
    promptLayout->addWidget(task_, 0, 1);
    promptLayout->addWidget(newButton, 0, 3, 1, 2);
    promptLayout->addWidget(prompt_, 1, 0, 1, 3);
    promptLayout->addWidget(askButton_, 1, 3);
    promptLayout->addWidget(stopButton_, 1, 4);
    promptLayout->setColumnStretch(2, 1);

    auto* side       = new QWidget;
    auto* sideLayout = new QVBoxLayout(side);
    sideLayout->addWidget(answerView_, 1);
    sideLayout->addWidget(opacityRow);
    sideLayout->addWidget(phraseList_);
    sideLayout->addWidget(promptRow);

    auto* splitter = new QSplitter;
    splitter->addWidget(canvas_);
    splitter->addWidget(side);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({760, 500});
    setCentralWidget(splitter);

    stage_    = new QLabel(tr("Ready"));
    rate_     = new QLabel;
    progress_ = new QProgressBar;
    progress_->setMaximumWidth(160);
    progress_->setVisible(false);
    statusBar()->addWidget(stage_, 1);
    statusBar()->addPermanentWidget(rate_);
    statusBar()->addPermanentWidget(progress_);

    buildActions();
    buildMenus();
    connectWorker();

    auto updateTask = [this] {
        prompt_->setPlaceholderText(tr(kPresets[task_->currentIndex()].placeholder));
    };
    connect(task_, &QComboBox::currentIndexChanged, this, updateTask);
    updateTask();
    connect(prompt_, &QLineEdit::returnPressed, this, &MainWindow::askFromPrompt);
    connect(askButton_, &QPushButton::clicked, this, &MainWindow::askFromPrompt);
    connect(stopButton_, &QPushButton::clicked, this, &MainWindow::stop);
    connect(newButton, &QPushButton::clicked, this, &MainWindow::newConversation);

    // One selection shared by the text, the list and the overlay.
    connect(phraseSelection_, &QItemSelectionModel::selectionChanged, this,
            &MainWindow::updateHighlightFromSelection);
    connect(canvas_, &ImageCanvas::maskClicked, this, [this](int mask) {
        const int row = phraseModel_->rowForMask(mask);
        if (row < 0)
            phraseSelection_->clearSelection();
        else
            phraseSelection_->setCurrentIndex(phraseModel_->index(row),
                                              QItemSelectionModel::ClearAndSelect);
    });
    connect(answerView_, &AnswerView::phraseHovered, this, [this](int row) {
        if (row < 0)
            updateHighlightFromSelection();
        else
            canvas_->setHighlightedMask(
                phraseModel_->index(row).data(PhraseListModel::MaskIndexRole).toInt());
    });
    connect(phraseModel_, &PhraseListModel::maskVisibilityChanged, canvas_,
            &ImageCanvas::setMaskVisible);
    connect(opacity_, &QSlider::valueChanged, this,
            [this](int v) { canvas_->setOverlayOpacity(v / 100.0); });
    connect(canvas_, &ImageCanvas::imageDropped, this, &MainWindow::openImage);
    connect(canvas_, &ImageCanvas::zoomChanged, this,
            [this](double z) { stage_->setText(tr("Zoom %1%").arg(int(std::lround(z * 100)))); });
    connect(canvas_, &ImageCanvas::boxesChanged, this, [this] {
        const int n = static_cast<int>(canvas_->boxes().size());
        askButton_->setToolTip(n ? tr("Ask with %1 region prompt(s)").arg(n) : tr("Ask"));
    });

    settings_ = SettingsDialog::load();
    resize(1280, 780);
}

MainWindow::~MainWindow() = default;

void MainWindow::buildActions() {
    auto make = [this](const QString& text, const QKeySequence& key, auto slot,
                       const QString& icon = {}) {
        auto* a = new QAction(QIcon::fromTheme(icon), text, this);
        if (!key.isEmpty()) a->setShortcut(key);
        connect(a, &QAction::triggered, this, slot);
        addAction(a);
        return a;
    };
    openAction_ =
        make(tr("&Open Image…"), QKeySequence::Open, &MainWindow::openImageDialog, "document-open");
    pasteAction_            = make(tr("&Paste Image"), QKeySequence(tr("Ctrl+Shift+V")),
                                   &MainWindow::pasteImage, "edit-paste");
    exportAction_           = make(tr("&Export Result…"), QKeySequence(tr("Ctrl+E")),
                                   &MainWindow::exportResult, "document-export");
    saveOverlayAction_      = make(tr("Save &Overlay Image…"), QKeySequence(tr("Ctrl+Shift+S")),
                                   &MainWindow::saveOverlay);
    saveConversationAction_ = make(tr("&Save Conversation…"), QKeySequence::Save,
                                   &MainWindow::saveConversation, "document-save");
    quitAction_ = make(tr("&Quit"), QKeySequence::Quit, &QWidget::close, "application-exit");
    undoAction_ = canvas_->undoStack()->createUndoAction(this, tr("&Undo"));
    undoAction_->setShortcut(QKeySequence::Undo);
    redoAction_ = canvas_->undoStack()->createRedoAction(this, tr("&Redo"));
    redoAction_->setShortcut(QKeySequence::Redo);
    deleteBoxAction_ = new QAction(tr("&Delete Box"), this);
    deleteBoxAction_->setShortcut(QKeySequence::Delete);
    deleteBoxAction_->setShortcutContext(Qt::WidgetShortcut);
    canvas_->addAction(deleteBoxAction_);
    connect(deleteBoxAction_, &QAction::triggered, canvas_, &ImageCanvas::deleteSelectedBoxes);
    clearBoxesAction_ = make(tr("C&lear Boxes"), QKeySequence(tr("Ctrl+Shift+X")),
                             [this] { canvas_->clearBoxes(); });
    copyAnswerAction_ = make(tr("&Copy Answer"), QKeySequence(tr("Ctrl+Shift+C")),
                             &MainWindow::copyAnswer, "edit-copy");
    zoomInAction_     = make(
            tr("Zoom &In"), QKeySequence::ZoomIn, [this] { canvas_->zoomIn(); }, "zoom-in");
    zoomOutAction_ = make(
        tr("Zoom &Out"), QKeySequence::ZoomOut, [this] { canvas_->zoomOut(); }, "zoom-out");
    fitAction_ = make(
        tr("&Fit to Window"), QKeySequence(tr("Ctrl+0")), [this] { canvas_->fitToWindow(); },
        "zoom-fit-best");
    actualSizeAction_ = make(
        tr("&Actual Size (100%)"), QKeySequence(tr("Ctrl+1")), [this] { canvas_->actualSize(); },
        "zoom-original");
    drawBoxesAction_ = make(tr("&Draw Boxes"), QKeySequence(tr("Ctrl+B")),
                            [this](bool on) { canvas_->setDrawingBoxes(on); });
    drawBoxesAction_->setCheckable(true);
    drawBoxesAction_->setChecked(true);
    drawBoxesAction_->setToolTip(
        tr("Left-drag draws a region box (off: left-drag pans; the middle button always pans)"));
    settingsAction_ = make(tr("&Model Settings…"), QKeySequence(tr("Ctrl+,")),
                           &MainWindow::showSettings, "preferences-system");
    askAction_      = make(tr("&Ask"), QKeySequence(tr("Ctrl+Return")), &MainWindow::askFromPrompt);
    stopAction_ = make(tr("&Stop"), QKeySequence(tr("Ctrl+.")), &MainWindow::stop, "process-stop");
    stopAction_->setEnabled(false);
    newConversationAction_ =
        make(tr("&New Conversation"), QKeySequence::New, &MainWindow::newConversation);
    shortcutsAction_ = make(tr("&Keyboard Shortcuts"), QKeySequence::HelpContents,
                            &MainWindow::showShortcuts, "help-contents");
    aboutAction_ =
        make(tr("&About GLaMM Studio"), QKeySequence(), &MainWindow::showAbout, "help-about");
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(openAction_);
    recentMenu_ = file->addMenu(tr("Open &Recent"));
    rebuildRecentMenu();
    file->addAction(pasteAction_);
    file->addSeparator();
    file->addAction(exportAction_);
    file->addAction(saveOverlayAction_);
    file->addAction(saveConversationAction_);
    file->addSeparator();
    file->addAction(quitAction_);
    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    edit->addAction(undoAction_);
    edit->addAction(redoAction_);
    edit->addSeparator();
    edit->addAction(deleteBoxAction_);
    edit->addAction(clearBoxesAction_);
    edit->addAction(copyAnswerAction_);
    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(zoomInAction_);
    view->addAction(zoomOutAction_);
    view->addAction(fitAction_);
    view->addAction(actualSizeAction_);
    view->addSeparator();
    view->addAction(drawBoxesAction_);
    QMenu* chat = menuBar()->addMenu(tr("&Conversation"));
    chat->addAction(askAction_);
    chat->addAction(stopAction_);
    chat->addAction(newConversationAction_);
    chat->addSeparator();
    chat->addAction(settingsAction_);
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(shortcutsAction_);
    help->addAction(aboutAction_);

    QToolBar* tools = addToolBar(tr("Main"));
    tools->setObjectName(QStringLiteral("mainToolBar"));
    tools->setToolButtonStyle(Qt::ToolButtonTextOnly);
    tools->setMovable(false);
    for (QAction* a :
         {openAction_, exportAction_, drawBoxesAction_, undoAction_, redoAction_, zoomInAction_,
          zoomOutAction_, fitAction_, actualSizeAction_, settingsAction_})
        tools->addAction(a);
}

void MainWindow::connectWorker() {
    SessionWorker* w = controller_->worker();
    // Every request to the worker ends in exactly one of modelLoaded, loadStopped, imageEncoded,
    // failed (loads and image encodes), answerReady or answerFailed (questions); the window is
    // busy while any is unanswered. A question left behind by another image, conversation or
    // model is stopped and what it still sends is dropped: the worker answers in order, so while
    // staleAnswers_ > 0 every token, mask and answer is theirs.
    connect(w, &SessionWorker::progressed, this, [this](const QString& stage, double fraction) {
        if (staleAnswers_ > 0) return;
        stage_->setText(stage);
        progress_->setVisible(true);
        progress_->setValue(int(fraction * 100));
    });
    connect(w, &SessionWorker::modelLoaded, this, [this](const QString& description) {
        modelLoaded_ = true;
        // A new engine session: no turn and no box of the conversation shown is in it.
        sentBoxes_.clear();
        answerView_->clearConversation();
        jobDone(tr("Model loaded"));
        statusBar()->showMessage(description.section(QLatin1Char('\n'), 0, 0), 8000);
        // The new engine session holds no image yet.
        imageState_ = ImageState::None;
        encodeShownImage();
        emit modelReady();
    });
    connect(w, &SessionWorker::loadStopped, this, [this] {
        modelLoaded_ = false;
        jobDone(tr("Loading stopped: no model loaded"));
    });
    // Encodes end in order, so the last one to end is the shown image's.
    connect(w, &SessionWorker::imageEncoded, this, [this](const QSize& size) {
        imageState_ = ImageState::Ready;
        jobDone(tr("Image ready (%1×%2)").arg(size.width()).arg(size.height()));
        emit imageReady();
    });
    connect(w, &SessionWorker::imageStopped, this, [this] {
        imageState_ = ImageState::Stopped;
        jobDone(tr("Encoding stopped: the next question encodes the image first"));
    });
    connect(w, &SessionWorker::tokenGenerated, this, [this](const QString& delta) {
        if (staleAnswers_ > 0) return;
        if (streamedTokens_++ == 0) generationTimer_.start();
        const double seconds = generationTimer_.elapsed() / 1000.0;
        if (seconds > 0)
            rate_->setText(tr("%1 tokens/s").arg(streamedTokens_ / seconds, 0, 'f', 1));
        answerView_->appendToken(delta);
    });
    connect(w, &SessionWorker::maskReady, this, [this](int index, const QImage& mask) {
        if (staleAnswers_ > 0) return;
        canvas_->setMask(index, mask, maskColor(index));
    });
    connect(w, &SessionWorker::answerReady, this, [this](const StudioAnswer& answer) {
        if (dropIfStale()) return;
        lastAnswer_ = answer;
        // The engine keeps a generated turn's boxes; a cancelled or teacher-forced one is not kept.
        if (!answer.cancelled && !answer.forced) sentBoxes_ += answer.boxes;
        phraseModel_->setPhrases(answer.phrases);
        QVector<QColor> colors;
        for (int i = 0; i < answer.masks.size(); ++i) colors.push_back(maskColor(i));
        canvas_->setMasks(answer.masks, colors);
        answerView_->finishAnswer(answer);
        jobDone(answer.cancelled ? tr("Stopped") : tr("Done"));
        rate_->setText(answer.generatedTokens > 0 || answer.cancelled
                           ? answer.timings
                           : tr("teacher-forced: %1 mask(s) in %2 ms")
                                 .arg(answer.masks.size())
                                 .arg(answer.totalMs, 0, 'f', 0));
        emit answerFinished(answer);
    });
    connect(w, &SessionWorker::answerFailed, this, [this](const QString& message) {
        if (dropIfStale()) return;
        jobDone(tr("Error"));
        reportError(tr("answer"), message);
    });
    connect(w, &SessionWorker::failed, this, [this](const QString& action, const QString& message) {
        if (imageState_ == ImageState::Encoding) imageState_ = ImageState::Failed;
        jobDone(tr("Error"));
        reportError(action, message);
    });
}

void MainWindow::startJob(const QString& stage) {
    ++jobs_;
    setBusy(true, stage);
}

void MainWindow::jobDone(const QString& stage) {
    jobs_ = std::max(0, jobs_ - 1); // (a test may feed the worker's signals without a request)
    if (jobs_ == 0) setBusy(false, stage);
}

bool MainWindow::dropIfStale() {
    if (staleAnswers_ == 0) {
        askInFlight_ = false; // this end is the question in flight's
        return false;
    }
    --staleAnswers_;
    jobDone(tr("Stopped"));
    return true;
}

void MainWindow::dropRunningAnswer() {
    if (!askInFlight_) return;
    controller_->stopAsksThrough(lastAskId_);
    askInFlight_ = false;
    ++staleAnswers_;
    answerView_->abandonAnswer(tr("(stopped)"));
}

void MainWindow::encodeShownImage() {
    if (!modelLoaded_ || (imagePath_.isEmpty() && pendingImage_.isNull())) return;
    imageState_ = ImageState::Encoding;
    startJob(tr("Encoding image"));
    if (!imagePath_.isEmpty())
        controller_->requestImageFile(imagePath_);
    else
        controller_->requestImage(pendingImage_);
}

void MainWindow::setBusy(bool busy, const QString& stage) {
    busy_ = busy;
    askButton_->setEnabled(!busy);
    askAction_->setEnabled(!busy);
    stopButton_->setEnabled(busy);
    stopAction_->setEnabled(busy);
    if (!stage.isEmpty()) stage_->setText(stage);
    progress_->setVisible(busy);
    if (busy) progress_->setValue(0);
}

void MainWindow::reportError(const QString& action, const QString& message) {
    answerView_->abandonAnswer(tr("(failed)"));
    if (jobs_ == 0) setBusy(false, tr("Error"));
    lastError_ = tr("Cannot %1: %2").arg(action, message);
    QString advice;
    if (action.startsWith(tr("load the model")) || message.contains(tr("no model")))
        advice =
            tr("Choose a GLaMM release folder (with config.json, tokenizer.model and the weights) "
               "and its CLIP folder in Conversation → Model Settings.");
    else if (action.startsWith(tr("encode")))
        advice = tr("Open another image (PNG, JPEG, BMP, TIFF, WebP).");
    else
        advice = tr("Check the prompt and the boxes, then ask again.");
    auto* box = new QMessageBox(QMessageBox::Warning, tr("GLaMM Studio"), lastError_,
                                QMessageBox::Ok, this);
    box->setInformativeText(advice);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setObjectName(QStringLiteral("errorBox"));
    box->open();
    emit errorReported(lastError_);
}

void MainWindow::loadModel(const ModelSettings& requested) {
    ModelSettings settings = requested;
    settings.modelDir      = SettingsDialog::resolvedModelDir(settings.modelDir);
    settings_              = settings;
    const QString problem  = SettingsDialog::checkModelFolder(settings.modelDir);
    if (!problem.isEmpty()) {
        reportError(tr("load the model from %1").arg(settings.modelDir), problem);
        return;
    }
    modelLoaded_ = false;
    dropRunningAnswer(); // its conversation goes with the model
    startJob(tr("Loading model…"));
    emit controller_->loadModelRequested(settings);
}

bool MainWindow::openImage(const QString& path) {
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QImage image = reader.read();
    if (image.isNull()) {
        reportError(tr("open %1").arg(path), reader.errorString());
        return false;
    }
    dropRunningAnswer(); // it was about the image being closed
    imagePath_ = path;
    sentBoxes_.clear();
    pendingImage_ = QImage();
    canvas_->setImage(image);
    phraseModel_->setPhrases({});
    lastAnswer_ = StudioAnswer();
    answerView_->clearConversation();
    addRecentFile(path);
    setWindowTitle(tr("%1 — GLaMM Studio").arg(QFileInfo(path).fileName()));
    imageState_ = ImageState::None;
    if (modelLoaded_) {
        encodeShownImage();
    } else {
        stage_->setText(tr("%1 (%2×%3) — no model loaded yet")
                            .arg(path)
                            .arg(image.width())
                            .arg(image.height()));
    }
    return true;
}

void MainWindow::pasteImage() {
    const QImage image = QApplication::clipboard()->image();
    if (image.isNull()) {
        statusBar()->showMessage(tr("The clipboard holds no image"), 4000);
        return;
    }
    dropRunningAnswer();
    imagePath_.clear();
    pendingImage_ = image;
    sentBoxes_.clear();
    canvas_->setImage(image);
    phraseModel_->setPhrases({});
    lastAnswer_ = StudioAnswer();
    answerView_->clearConversation();
    setWindowTitle(tr("Pasted image — GLaMM Studio"));
    imageState_ = ImageState::None;
    encodeShownImage();
}

void MainWindow::setTask(StudioTask task) {
    const int i = task_->findData(int(task));
    if (i >= 0) task_->setCurrentIndex(i);
}

void MainWindow::ask(StudioTask task, const QString& text, const QString& forcedAnswer) {
    if (!modelLoaded_) {
        reportError(tr("answer"), tr("no model is loaded"));
        return;
    }
    if (!canvas_->hasImage()) {
        reportError(tr("answer"), tr("no image is open; open one first (Ctrl+O)"));
        return;
    }
    if (imageState_ == ImageState::Failed) {
        reportError(tr("answer"), tr("the image could not be encoded; open another one"));
        return;
    }
    if (imageState_ != ImageState::Ready && imageState_ != ImageState::Encoding)
        encodeShownImage(); // stopped: encoded again, then the question (the worker keeps order)
    AskRequest request;
    request.task = task;
    request.text = text;
    for (const QRectF& box : canvas_->boxes())
        if (!sentBoxes_.contains(box)) request.boxes.push_back(box);
    request.forcedAnswer = forcedAnswer;
    request.maxNewTokens = settings_.maxNewTokens;
    request.temperature  = settings_.temperature;
    request.topP         = settings_.topP;
    QString shown        = text.isEmpty() ? task_->itemText(task_->findData(int(task))) : text;
    if (!request.boxes.isEmpty())
        shown += request.boxes.size() == 1 ? tr("  [1 box]")
                                           : tr("  [%1 boxes]").arg(request.boxes.size());
    // The previous answer's masks give way to the new answer's.
    phraseSelection_->clearSelection();
    phraseModel_->setPhrases({});
    canvas_->clearMasks();
    answerView_->beginAnswer(shown);
    streamedTokens_ = 0;
    rate_->clear();
    request.id   = ++lastAskId_;
    askInFlight_ = true;
    startJob(forcedAnswer.isEmpty() ? tr("Generating…") : tr("Scoring the given answer…"));
    emit controller_->askRequested(request);
}

void MainWindow::askFromPrompt() {
    if (busy_) return;
    ask(static_cast<StudioTask>(task_->currentData().toInt()), prompt_->text().trimmed());
    prompt_->clear();
}

void MainWindow::stop() {
    controller_->stop(); // a model load
    controller_->stopImageEncodes();
    controller_->stopAsksThrough(lastAskId_);
    stage_->setText(tr("Stopping…"));
}

void MainWindow::newConversation() {
    dropRunningAnswer();
    emit controller_->resetRequested();
    sentBoxes_.clear();
    answerView_->clearConversation();
    phraseModel_->setPhrases({});
    canvas_->clearMasks();
    lastAnswer_ = StudioAnswer();
    stage_->setText(tr("New conversation"));
}

void MainWindow::updateHighlightFromSelection() {
    const QModelIndexList rows = phraseSelection_->selectedRows();
    canvas_->setHighlightedMask(
        rows.isEmpty() ? -1 : rows.first().data(PhraseListModel::MaskIndexRole).toInt());
}

void MainWindow::openImageDialog() {
    const QString path =
        QFileDialog::getOpenFileName(this, tr("Open Image"), QFileInfo(imagePath_).absolutePath(),
                                     tr("Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff)"));
    if (!path.isEmpty()) openImage(path);
}

void MainWindow::addRecentFile(const QString& path) {
    QSettings q;
    QStringList files = q.value(QStringLiteral("recentFiles")).toStringList();
    files.removeAll(path);
    files.prepend(path);
    while (files.size() > kMaxRecentFiles) files.removeLast();
    q.setValue(QStringLiteral("recentFiles"), files);
    rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
    recentMenu_->clear();
    const QStringList files = QSettings().value(QStringLiteral("recentFiles")).toStringList();
    for (const QString& f : files)
        recentMenu_->addAction(QFileInfo(f).fileName(), this, [this, f] { openImage(f); })
            ->setToolTip(f);
    recentMenu_->setEnabled(!files.isEmpty());
}

bool MainWindow::requireAnswer() {
    if (lastAnswer_.engineAnswer && canvas_->hasImage()) return true;
    statusBar()->showMessage(tr("Nothing to export yet: ask something first"), 4000);
    return false;
}

void MainWindow::exportResult() {
    if (!requireAnswer()) return;
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Export Result To"));
    if (dir.isEmpty()) return;
    try {
        glamm::write_result(dir.toStdString(), toEngineImage(canvas_->image()),
                            *lastAnswer_.engineAnswer, settings_.modelDir.toStdString(),
                            imagePath_.toStdString(), /*labelme=*/true);
        statusBar()->showMessage(
            tr("Wrote result.json, overlay.png, mask PNGs and labelme.json to %1").arg(dir), 6000);
    } catch (const std::exception& e) {
        reportError(tr("export to %1").arg(dir), QString::fromUtf8(e.what()));
    }
}

void MainWindow::saveOverlay() {
    if (!requireAnswer()) return;
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Save Overlay Image"), QStringLiteral("overlay.png"), tr("PNG images (*.png)"));
    if (path.isEmpty()) return;
    try {
        const glamm::Image overlay =
            glamm::render_overlay(toEngineImage(canvas_->image()), *lastAnswer_.engineAnswer);
        glamm::save_png(path.toStdString(), overlay.rgb.data(), overlay.width, overlay.height, 3);
    } catch (const std::exception& e) {
        reportError(tr("save %1").arg(path), QString::fromUtf8(e.what()));
    }
}

void MainWindow::saveConversation() {
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Save Conversation"), QStringLiteral("conversation.txt"), tr("Text (*.txt)"));
    if (path.isEmpty()) return;
    // Written to a temporary file beside it and renamed: a full disk loses no earlier file.
    QSaveFile file(path);
    const QByteArray text = answerView_->conversationText().toUtf8();
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text) || file.write(text) != text.size() ||
        !file.commit())
        reportError(tr("save %1").arg(path), file.errorString());
}

void MainWindow::copyAnswer() {
    QApplication::clipboard()->setText(lastAnswer_.text);
}

void MainWindow::showSettings() {
    SettingsDialog dialog(this);
    dialog.setSettings(settings_);
    if (dialog.exec() != QDialog::Accepted) return;
    const ModelSettings chosen = dialog.settings();
    SettingsDialog::save(chosen);
    // Generation settings apply to the next question; only another model, device or precision
    // needs a reload (which starts a new conversation).
    const bool sameModel =
        modelLoaded_ && SettingsDialog::resolvedModelDir(chosen.modelDir) == settings_.modelDir &&
        chosen.visionTowerDir == settings_.visionTowerDir && chosen.device == settings_.device &&
        chosen.dtype == settings_.dtype && chosen.quantize == settings_.quantize;
    if (!sameModel) {
        loadModel(chosen);
        return;
    }
    settings_.maxNewTokens = chosen.maxNewTokens;
    settings_.temperature  = chosen.temperature;
    settings_.topP         = chosen.topP;
    statusBar()->showMessage(tr("Generation settings apply to the next question"), 4000);
}

void MainWindow::showShortcuts() {
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Keyboard Shortcuts"));
    auto* table = new QTableWidget(0, 2);
    table->setHorizontalHeaderLabels({tr("Action"), tr("Shortcut")});
    table->horizontalHeader()->setStretchLastSection(true);
    table->verticalHeader()->hide();
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    auto add = [table](const QString& action, const QString& keys) {
        const int row = table->rowCount();
        table->insertRow(row);
        table->setItem(row, 0,
                       new QTableWidgetItem(
                           QString(action).remove(QLatin1Char('&')).remove(QStringLiteral("…"))));
        table->setItem(row, 1, new QTableWidgetItem(keys));
    };
    for (QAction* a : {openAction_,
                       pasteAction_,
                       exportAction_,
                       saveOverlayAction_,
                       saveConversationAction_,
                       undoAction_,
                       redoAction_,
                       deleteBoxAction_,
                       clearBoxesAction_,
                       copyAnswerAction_,
                       zoomInAction_,
                       zoomOutAction_,
                       fitAction_,
                       actualSizeAction_,
                       drawBoxesAction_,
                       askAction_,
                       stopAction_,
                       newConversationAction_,
                       settingsAction_,
                       shortcutsAction_,
                       quitAction_})
        add(a->text(), a->shortcut().toString(QKeySequence::NativeText));
    add(tr("Ask (in the prompt)"), tr("Return"));
    add(tr("Zoom"), tr("Mouse wheel"));
    add(tr("Pan"), tr("Middle-button drag"));
    add(tr("Draw a region box"), tr("Left-button drag on the image"));
    add(tr("Select a mask's phrase"), tr("Click the mask"));
    table->resizeColumnsToContents();
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    auto* layout = new QVBoxLayout(&dialog);
    layout->addWidget(table);
    layout->addWidget(buttons);
    dialog.resize(480, 560);
    dialog.exec();
}

void MainWindow::showAbout() {
    QMessageBox::about(this, tr("About GLaMM Studio"),
                       tr("<b>GLaMM Studio %1</b><p>Grounded image chat: answers whose phrases are "
                          "linked to segmentation masks, with region prompts.</p>")
                           .arg(QApplication::applicationVersion()));
}
