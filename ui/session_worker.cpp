// The inference thread: adapts the engine's plain callbacks to Qt signals and its exceptions to
// failed(). The engine's Session enters c10::InferenceMode inside each call on the calling thread
// (engine/model/session.cpp), which is this worker thread, so ui/ needs no torch header for it.
#include "ui/session_worker.h"

#include "engine/core/error.h"
#include "engine/io/image_file.h"
#include "engine/session.h"
#include "ui/image_adapter.h"

#include <QElapsedTimer>

#include <exception>

namespace {

glamm::Task toEngineTask(StudioTask task) {
    switch (task) {
    case StudioTask::GroundedCaption:
        return glamm::Task::GroundedCaption;
    case StudioTask::ReferringSegmentation:
        return glamm::Task::ReferringSegmentation;
    case StudioTask::RegionCaption:
        return glamm::Task::RegionCaption;
    case StudioTask::ImageCaption:
        return glamm::Task::ImageCaption;
    case StudioTask::Chat:
        return glamm::Task::Chat;
    }
    return glamm::Task::Chat;
}

// Byte offset into UTF-8 `text` -> UTF-16 offset into its QString.
int utf16Offset(const std::string& text, size_t byteOffset) {
    return static_cast<int>(
        QString::fromUtf8(text.data(), static_cast<qsizetype>(byteOffset)).size());
}

QString describeTimings(const glamm::Timings& t) {
    const double seconds = t.decode_ms / 1000.0;
    const double rate    = seconds > 0 ? t.generated_tokens / seconds : 0.0;
    return QObject::tr("%1 tokens in %2 s (%3 tokens/s); prefill %4 ms, masks %5 ms, total %6 ms")
        .arg(t.generated_tokens)
        .arg(seconds, 0, 'f', 2)
        .arg(rate, 0, 'f', 1)
        .arg(t.prefill_ms, 0, 'f', 0)
        .arg(t.mask_decoder_ms + t.postprocess_ms, 0, 'f', 0)
        .arg(t.total_ms, 0, 'f', 0);
}

StudioAnswer toStudioAnswer(glamm::GroundedAnswer&& answer) {
    StudioAnswer out;
    out.text    = QString::fromStdString(answer.text);
    out.rawText = QString::fromStdString(answer.raw_text);
    for (const auto& mask : answer.masks) out.masks.push_back(toMaskImage(mask));
    for (const auto& box : answer.boxes)
        out.boxes.push_back(QRectF(QPointF(box.x1, box.y1), QPointF(box.x2, box.y2)));
    std::vector<bool> referenced(answer.masks.size(), false);
    for (const auto& phrase : answer.phrases) {
        GroundedPhrase p;
        p.text  = QString::fromStdString(phrase.text);
        p.begin = utf16Offset(answer.text, phrase.begin);
        p.end   = utf16Offset(answer.text, phrase.end);
        p.mask  = phrase.mask < static_cast<int>(answer.masks.size()) ? phrase.mask : -1;
        if (p.mask >= 0) {
            p.color            = maskColor(p.mask);
            referenced[p.mask] = true;
        }
        out.phrases.push_back(p);
    }
    // Masks no phrase refers to ("Sure, it is [SEG].") still get a row of their own.
    for (size_t i = 0; i < referenced.size(); ++i) {
        if (referenced[i]) continue;
        GroundedPhrase p;
        p.text  = QObject::tr("mask %1").arg(i + 1);
        p.mask  = static_cast<int>(i);
        p.color = maskColor(p.mask);
        out.phrases.push_back(p);
    }
    out.timings         = describeTimings(answer.timings);
    out.totalMs         = answer.timings.total_ms;
    out.generatedTokens = static_cast<int>(answer.timings.generated_tokens);
    out.cancelled       = answer.cancelled;
    out.engineAnswer    = std::make_shared<const glamm::GroundedAnswer>(std::move(answer));
    return out;
}

} // namespace

void registerStudioTypes() {
    qRegisterMetaType<ModelSettings>();
    qRegisterMetaType<AskRequest>();
    qRegisterMetaType<StudioAnswer>();
}

SessionWorker::SessionWorker(QObject* parent) : QObject(parent) {}

SessionWorker::~SessionWorker() = default;

void SessionWorker::stopAsksThrough(quint64 id) {
    quint64 current = stopThrough_.load();
    while (current < id && !stopThrough_.compare_exchange_weak(current, id)) {
    }
}

void SessionWorker::loadModel(const ModelSettings& settings) {
    stopRequested_.store(false);
    try {
        glamm::ModelOptions options;
        options.model_dir        = settings.modelDir.toStdString();
        options.vision_tower_dir = settings.visionTowerDir.toStdString();
        options.device           = settings.device.toStdString();
        options.dtype            = settings.dtype.toStdString();
        options.quantize         = settings.quantize.toStdString();
        options.on_progress      = [this](const std::string& stage, double fraction) {
            emit progressed(QString::fromStdString(stage), fraction);
        };
        options.should_abort = [this] { return stopRequested_.load(); };
        session_.reset();
        model_.reset();
        modelLoaded_.store(false);
        model_   = glamm::Model::load(options);
        session_ = std::make_unique<glamm::Session>(model_);
        modelLoaded_.store(true);
        emit modelLoaded(QString::fromStdString(model_->describe()));
    } catch (const glamm::Cancelled&) {
        session_.reset();
        model_.reset();
        emit loadStopped();
    } catch (const std::exception& e) {
        emit failed(tr("load the model from %1").arg(settings.modelDir),
                    QString::fromUtf8(e.what()));
    }
}

void SessionWorker::encode(const QString& label,
                           const std::function<void(const std::function<bool()>&)>& work) {
    const quint64 id = ++imagesStarted_;
    if (!session_) {
        emit failed(tr("encode %1").arg(label), tr("no model is loaded; choose one in Settings"));
        return;
    }
    try {
        emit progressed(tr("encoding image"), 0.0);
        work([this, id] {
            return id < imagesRequested_.load() || id <= imagesStoppedThrough_.load();
        });
    } catch (const glamm::Cancelled&) {
        emit imageStopped();
    } catch (const std::exception& e) {
        emit failed(tr("encode %1").arg(label), QString::fromUtf8(e.what()));
    }
}

void SessionWorker::setImageFile(const QString& path) {
    encode(path, [&](const std::function<bool()>& shouldAbort) {
        const glamm::Image image = glamm::load_image(path.toStdString());
        session_->set_image(image, shouldAbort);
        emit imageEncoded(QSize(static_cast<int>(image.width), static_cast<int>(image.height)));
    });
}

void SessionWorker::setImage(const QImage& image) {
    encode(tr("the image"), [&](const std::function<bool()>& shouldAbort) {
        session_->set_image(toEngineImage(image), shouldAbort);
        emit imageEncoded(image.size());
    });
}

void SessionWorker::ask(const AskRequest& request) {
    stopRequested_.store(false);
    if (!session_) {
        emit answerFailed(tr("no model is loaded; choose one in Settings"));
        return;
    }
    try {
        glamm::Request engineRequest;
        engineRequest.task = toEngineTask(request.task);
        engineRequest.text = request.text.toStdString();
        for (const QRectF& box : request.boxes)
            engineRequest.boxes.push_back({box.left(), box.top(), box.right(), box.bottom()});
        engineRequest.generation.max_new_tokens = request.maxNewTokens;
        engineRequest.generation.temperature    = request.temperature;
        engineRequest.generation.top_p          = request.topP;

        glamm::Callbacks callbacks;
        callbacks.on_token = [this](const std::string& delta) {
            emit tokenGenerated(QString::fromStdString(delta));
        };
        callbacks.on_mask = [this](int index, const glamm::Mask& mask) {
            emit maskReady(index, toMaskImage(mask));
        };
        callbacks.on_progress = [this](const std::string& stage, double fraction) {
            emit progressed(QString::fromStdString(stage), fraction);
        };
        callbacks.should_abort = [this, id = request.id] {
            return stopRequested_.load() || (id != 0 && id <= stopThrough_.load());
        };

        glamm::GroundedAnswer answer =
            request.forcedAnswer.isEmpty()
                ? session_->ask(engineRequest, callbacks)
                : session_->score(engineRequest, request.forcedAnswer.toStdString(), callbacks);
        StudioAnswer result = toStudioAnswer(std::move(answer));
        result.question     = request.text;
        result.forced       = !request.forcedAnswer.isEmpty();
        emit answerReady(result);
    } catch (const std::exception& e) {
        emit answerFailed(QString::fromUtf8(e.what()));
    }
}

void SessionWorker::resetConversation() {
    if (session_) session_->reset();
}

SessionController::SessionController(QObject* parent) : QObject(parent) {
    registerStudioTypes();
    thread_.setObjectName(QStringLiteral("glamm-session"));
    worker_ = new SessionWorker;
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    connect(this, &SessionController::loadModelRequested, worker_, &SessionWorker::loadModel);
    connect(this, &SessionController::imageFileRequested, worker_, &SessionWorker::setImageFile);
    connect(this, &SessionController::imageRequested, worker_, &SessionWorker::setImage);
    connect(this, &SessionController::askRequested, worker_, &SessionWorker::ask);
    connect(this, &SessionController::resetRequested, worker_, &SessionWorker::resetConversation);
    thread_.start();
}

void SessionController::requestImageFile(const QString& path) {
    worker_->noteImageRequested();
    emit imageFileRequested(path);
}

void SessionController::requestImage(const QImage& image) {
    worker_->noteImageRequested();
    emit imageRequested(image);
}

SessionController::~SessionController() {
    worker_->requestStop();
    worker_->stopImageEncodes();
    thread_.quit();
    thread_.wait();
}
