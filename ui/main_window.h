// The main window of GLaMM Studio: the image canvas on the left; the conversation, the grounded
// phrases and the prompt on the right. All inference goes through SessionController's thread.
#pragma once

#include "ui/studio_types.h"

#include <QElapsedTimer>
#include <QMainWindow>

class AnswerView;
class ImageCanvas;
class PhraseListModel;
class QAction;
class QComboBox;
class QItemSelectionModel;
class QLabel;
class QLineEdit;
class QListView;
class QMenu;
class QProgressBar;
class QPushButton;
class QSlider;
class SessionController;

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Loads a model on the worker (progress in the status bar); a folder that is not a GLaMM
    // release is reported at once with what is missing.
    void loadModel(const ModelSettings& settings);
    // Shows `path` on the canvas and encodes it once a model is loaded; false (and tells the
    // user) if it cannot be read.
    bool openImage(const QString& path);
    // Asks about the current image with the drawn boxes; `forcedAnswer` teacher-forces.
    void ask(StudioTask task, const QString& text, const QString& forcedAnswer = QString());
    // Selects the prompt preset shown in the task box.
    void setTask(StudioTask task);

    ImageCanvas* canvas() const { return canvas_; }
    AnswerView* answerView() const { return answerView_; }
    PhraseListModel* phraseModel() const { return phraseModel_; }
    QItemSelectionModel* phraseSelection() const { return phraseSelection_; }
    SessionController* controller() const { return controller_; }
    const StudioAnswer& lastAnswer() const { return lastAnswer_; }
    // The text of the last error shown to the user.
    QString lastError() const { return lastError_; }
    bool isBusy() const { return busy_; }
    bool isModelLoaded() const { return modelLoaded_; }
    // Shows the settings dialog; loads the model when accepted.
    void showSettings();

signals:
    void modelReady();
    void imageReady();
    void answerFinished(const StudioAnswer& answer);
    void errorReported(const QString& text);

public slots:
    void askFromPrompt();
    void stop();
    void newConversation();

private slots:
    void openImageDialog();
    void pasteImage();
    void exportResult();
    void saveOverlay();
    void saveConversation();
    void copyAnswer();
    void showShortcuts();
    void showAbout();

private:
    void buildActions();
    void buildMenus();
    void connectWorker();
    void setBusy(bool busy, const QString& stage = QString());
    // A request goes to the worker / its one closing signal came back (busy until none is out).
    void startJob(const QString& stage);
    void jobDone(const QString& stage);
    // Stops the question in flight, if any, and drops what it still sends.
    void dropRunningAnswer();
    // Asks the worker to encode the image shown (imagePath_ or pendingImage_).
    void encodeShownImage();
    // At a question's end (answer or failure): true when it was a dropped one (then it is
    // counted off), false when it is the question in flight's.
    bool dropIfStale();
    void reportError(const QString& action, const QString& message);
    void addRecentFile(const QString& path);
    void rebuildRecentMenu();
    void updateHighlightFromSelection();
    bool requireAnswer();

    SessionController* controller_        = nullptr;
    ImageCanvas* canvas_                  = nullptr;
    AnswerView* answerView_               = nullptr;
    PhraseListModel* phraseModel_         = nullptr;
    QItemSelectionModel* phraseSelection_ = nullptr;
    QListView* phraseList_                = nullptr;
    QSlider* opacity_                     = nullptr;
    QComboBox* task_                      = nullptr;
    QLineEdit* prompt_                    = nullptr;
    QPushButton* askButton_               = nullptr;
    QPushButton* stopButton_              = nullptr;
    QLabel* stage_                        = nullptr;
    QLabel* rate_                         = nullptr;
    QProgressBar* progress_               = nullptr;
    QMenu* recentMenu_                    = nullptr;

    QAction *openAction_ = nullptr, *pasteAction_ = nullptr, *exportAction_ = nullptr,
            *saveOverlayAction_ = nullptr, *saveConversationAction_ = nullptr,
            *quitAction_ = nullptr, *undoAction_ = nullptr, *redoAction_ = nullptr,
            *deleteBoxAction_ = nullptr, *clearBoxesAction_ = nullptr, *copyAnswerAction_ = nullptr,
            *zoomInAction_ = nullptr, *zoomOutAction_ = nullptr, *fitAction_ = nullptr,
            *actualSizeAction_ = nullptr, *drawBoxesAction_ = nullptr, *settingsAction_ = nullptr,
            *askAction_ = nullptr, *stopAction_ = nullptr, *newConversationAction_ = nullptr,
            *shortcutsAction_ = nullptr, *aboutAction_ = nullptr;

    ModelSettings settings_;
    QString imagePath_;
    QImage pendingImage_; // pasted image waiting for a model
    StudioAnswer lastAnswer_;
    // Boxes already sent in this conversation: the engine keeps them, a follow-up sends only new
    // ones.
    QVector<QRectF> sentBoxes_;
    QString lastError_;
    bool busy_          = false;
    bool modelLoaded_   = false;
    int jobs_           = 0;     // requests sent to the worker and not yet answered
    bool askInFlight_   = false; // one of them is a question whose answer will be shown
    int staleAnswers_   = 0;     // questions stopped by dropRunningAnswer, not yet answered
    quint64 lastAskId_  = 0;     // AskRequest::id of the last question sent
    int streamedTokens_ = 0;
    QElapsedTimer generationTimer_;
    // Whether the engine holds the image shown: a stopped or failed encode leaves it the previous
    // one (or none), so a question must not go out about it.
    enum class ImageState { None, Encoding, Ready, Stopped, Failed };
    ImageState imageState_ = ImageState::None;
};
