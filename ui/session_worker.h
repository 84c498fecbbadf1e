// SessionWorker owns the engine (Model + Session) and runs it on its own QThread (QThread-docs
// worker pattern); SessionController owns that thread and forwards requests by queued signals.
// Results come back as value types (studio_types.h). The GUI thread never calls the engine.
#pragma once

#include "ui/studio_types.h"

#include <QObject>
#include <QThread>

#include <atomic>
#include <functional>
#include <memory>

namespace glamm {
class Model;
class Session;
} // namespace glamm

class SessionWorker : public QObject {
    Q_OBJECT

public:
    explicit SessionWorker(QObject* parent = nullptr);
    ~SessionWorker() override;

    // Thread-safe: the running generation stops at the next token or prefill layer
    // (Callbacks::should_abort), a model load between two tensors (ModelOptions::should_abort).
    void requestStop() { stopRequested_.store(true); }
    // Thread-safe: counts an image encode about to be requested (setImageFile / setImage run in
    // the order asked). An encode stops as soon as a later one has been counted: only the newest
    // image is worth encoding.
    void noteImageRequested() { ++imagesRequested_; }
    // Thread-safe: stops every image encode counted so far, running (between two encoder layers)
    // or still queued.
    void stopImageEncodes() { imagesStoppedThrough_.store(imagesRequested_.load()); }
    // Thread-safe: stops every question numbered 1..id (AskRequest::id), running or still queued;
    // unlike requestStop, which ask() clears when it starts, it cannot miss a question sent just
    // before it.
    void stopAsksThrough(quint64 id);
    // Thread-safe: whether a model is loaded.
    bool hasModel() const { return modelLoaded_.load(); }

public slots:
    // Loads (replaces) the model; emits modelLoaded, loadStopped (requestStop) or failed.
    void loadModel(const ModelSettings& settings);
    // Reads `path` with the engine's loader (the reference's cv2 conventions) and encodes it;
    // emits imageEncoded, imageStopped or failed (as does setImage).
    void setImageFile(const QString& path);
    // Encodes an image that is already in memory (paste, drag-and-drop of image data).
    void setImage(const QImage& image);
    // Answers (or teacher-forces) a request; streams tokenGenerated/maskReady, then answerReady
    // (answerFailed when it cannot).
    void ask(const AskRequest& request);
    // Forgets the conversation, keeps the image.
    void resetConversation();

signals:
    void modelLoaded(const QString& description);
    // The load was stopped on request: no model is loaded.
    void loadStopped();
    void imageEncoded(const QSize& size);
    // An image encode was stopped (Stop, or a newer image asked for): the engine session keeps
    // the image it had before.
    void imageStopped();
    void progressed(const QString& stage, double fraction);
    void tokenGenerated(const QString& delta);
    void maskReady(int index, const QImage& mask);
    void answerReady(const StudioAnswer& answer);
    // The question could not be answered (ask() emits answerReady or this, never both).
    void answerFailed(const QString& message);
    // A load or an image encode failed: `action` says what could not be done ("load the model"),
    // `message` why (the engine's text).
    void failed(const QString& action, const QString& message);

private:
    // Runs work(shouldAbort) for the next image encode, turning its end into one signal.
    void encode(const QString& label,
                const std::function<void(const std::function<bool()>&)>& work);

    std::shared_ptr<const glamm::Model> model_;
    std::unique_ptr<glamm::Session> session_;
    std::atomic<bool> stopRequested_{false};
    std::atomic<quint64> stopThrough_{0};
    std::atomic<quint64> imagesRequested_{0};      // encodes counted by noteImageRequested
    std::atomic<quint64> imagesStoppedThrough_{0}; // encodes 1..this are stopped
    quint64 imagesStarted_ = 0;                    // encodes begun (worker thread only)
    std::atomic<bool> modelLoaded_{false};
};

// Owns the worker thread. Calls on this object (GUI thread) become queued requests to the worker;
// connect to worker()'s signals for the results. The destructor stops generation, quits and waits.
class SessionController : public QObject {
    Q_OBJECT

public:
    explicit SessionController(QObject* parent = nullptr);
    ~SessionController() override;

    SessionWorker* worker() const { return worker_; }
    void stop() { worker_->requestStop(); }
    void stopAsksThrough(quint64 id) { worker_->stopAsksThrough(id); }
    // Encode an image on the worker (counted first: SessionWorker::noteImageRequested).
    void requestImageFile(const QString& path);
    void requestImage(const QImage& image);
    void stopImageEncodes() { worker_->stopImageEncodes(); }

signals:
    void loadModelRequested(const ModelSettings& settings);
    void imageFileRequested(const QString& path);
    void imageRequested(const QImage& image);
    void askRequested(const AskRequest& request);
    void resetRequested();

private:
    QThread thread_;
    SessionWorker* worker_ = nullptr;
};
