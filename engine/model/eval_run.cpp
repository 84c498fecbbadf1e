// Benchmark inference loops: one Session, one image at a time, predictions written per image.
#include "model/eval_run.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/rle.h"
#include "text/markup.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace glamm {

// ref: mbzuai-oryx/groundingLMM eval/gcg/infer.py (inference, result_dict),
//      eval/referring_seg/infer_and_evaluate.py + dataset/segm_datasets/RefCOCO_Segm_ds.py
//      (teacher-forced answers), eval/region_captioning/infer.py (inference, result_dict)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// A file name for an image id ('/' and other awkward bytes replaced).
std::string file_stem(const std::string& id) {
    std::string s = id;
    for (char& c : s)
        if (c == '/' || c == '\\' || c == '\0') c = '_';
    if (s.empty() || s == "." || s == "..") s = "_" + s;
    return s;
}

Rle mask_rle(const Mask& m) {
    return rle_encode(m.data.data(), m.height, m.width);
}

json rle_json(const Rle& r) {
    return {{"size", {r.height, r.width}}, {"counts", rle_to_string(r)}};
}

// The reference's clean-up of a generated answer (spec §6.6): caption and <p> phrases.
struct CleanedAnswer {
    std::string caption;
    std::vector<std::string> phrases;
};
CleanedAnswer clean(const std::string& raw) {
    const std::string text = clean_generated_text(raw);
    return {gcg_caption(text), gcg_phrases(text)};
}

// Loads images once per run of consecutive samples on the same file.
class ImageCache {
public:
    ImageCache(Session& session, ShouldAbort should_abort)
        : session_(session), should_abort_(std::move(should_abort)) {}
    void use(const std::string& path) {
        if (path == current_) {
            session_.reset();
            return;
        }
        with_context("image " + path, [&] {
            const Image image = load_image(path);
            session_.set_image(image, should_abort_);
            width_  = image.width;
            height_ = image.height;
        });
        current_ = path;
    }
    int64_t width() const { return width_; }
    int64_t height() const { return height_; }

private:
    Session& session_;
    ShouldAbort should_abort_;
    std::string current_;
    int64_t width_ = 0, height_ = 0;
};

Callbacks abort_callbacks(const EvalRunOptions& o) {
    Callbacks c;
    c.should_abort = o.should_abort;
    return c;
}

bool aborted(const EvalRunOptions& o) {
    return o.should_abort && o.should_abort();
}

std::string write_prediction(const EvalRunOptions& o, const std::string& image_id, const json& j) {
    const std::string path = (fs::path(o.out_dir) / (file_stem(image_id) + ".json")).string();
    write_file_atomic(path, j.dump() + "\n");
    return path;
}

// The loop every task shares: stop when asked (the result is marked cancelled), time each sample,
// run `body(index, sample)` with `context(sample)` on any error, report progress. `body` may set
// result.cancelled (a cancelled answer) to stop after the sample.
template <class Sample, class Context, class Body>
void for_each_sample(const std::vector<Sample>& samples, const EvalRunOptions& o,
                     EvalRunResult& result, Context context, Body body) {
    for (size_t i = 0; i < samples.size(); ++i) {
        if (aborted(o)) {
            result.cancelled = true;
            break;
        }
        const Sample& s = samples[i];
        const auto t0   = Clock::now();
        try {
            with_context(context(s), [&] { body(i, s); });
        } catch (const Cancelled&) { // a stop inside an image encode
            result.cancelled = true;
        }
        if (result.cancelled) break;
        if (o.on_sample) o.on_sample(i + 1, samples.size(), s.image_id, seconds_since(t0));
    }
}

void make_out_dir(const EvalRunOptions& o) {
    if (o.out_dir.empty()) fail("no output folder for the predictions");
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) fail("cannot create ", o.out_dir, ": ", ec.message());
}

} // namespace

EvalRunResult run_gcg_eval(const std::shared_ptr<const Model>& model, const eval::GcgDataset& data,
                           const EvalRunOptions& o) {
    make_out_dir(o);
    if (o.teacher_forced)
        for (const auto& s : data.samples)
            if (s.gcg_answer.empty())
                fail("teacher-forced GCG needs the GT grounded caption (\"gcg_caption\"); image \"",
                     s.image_id, "\" has none");
    Session session(model);
    ImageCache images(session, o.should_abort);
    EvalRunResult result;
    for_each_sample(
        data.samples, o, result, [](const auto& s) { return "GCG image \"" + s.image_id + "\""; },
        [&](size_t, const auto& s) {
            images.use(s.image_path);
            Request request;
            request.task                = Task::GroundedCaption; // empty text: the eval instruction
            request.generation          = o.generation;
            const GroundedAnswer answer =
                o.teacher_forced ? session.score(request, s.gcg_answer, abort_callbacks(o))
                                 : session.ask(request, abort_callbacks(o));
            if (answer.cancelled) {
                result.cancelled = true;
                return;
            }
            const CleanedAnswer c = clean(answer.raw_text);
            eval::Prediction p;
            p.image_id = s.image_id;
            p.caption  = c.caption;
            p.phrases  = c.phrases;
            json masks = json::array();
            for (const auto& m : answer.masks) {
                p.masks.push_back(mask_rle(m));
                masks.push_back(rle_json(p.masks.back()));
            }
            result.files.push_back(write_prediction(o, s.image_id,
                                                    {{"image_id", s.image_id},
                                                     {"caption", p.caption},
                                                     {"phrases", p.phrases},
                                                     {"pred_masks", masks}}));
            result.predictions.push_back(std::move(p));
        });
    return result;
}

EvalRunResult run_refseg_eval(const std::shared_ptr<const Model>& model,
                              const eval::RefsegDataset& data, const EvalRunOptions& o) {
    make_out_dir(o);
    Session session(model);
    ImageCache images(session, o.should_abort);
    EvalRunResult result;
    json per_image = json::array();
    auto flush     = [&](const std::string& image_id) {
        if (!per_image.empty()) result.files.push_back(write_prediction(o, image_id, per_image));
        per_image = json::array();
    };
    for_each_sample(
        data.samples, o, result,
        [](const auto& s) {
            return "refseg expression " + std::to_string(s.gt_id) + " (\"" + s.sentence + "\")";
        },
        [&](size_t i, const auto& s) {
            if (i > 0 && data.samples[i - 1].image_id != s.image_id)
                flush(data.samples[i - 1].image_id);
            images.use(s.image_path);
            Request request;
            request.task                = Task::ReferringSegmentation;
            request.text                = s.sentence;
            const GroundedAnswer answer =
                session.score(request, kRefsegEvalAnswer, abort_callbacks(o));
            if (answer.cancelled) {
                result.cancelled = true;
                return;
            }
            if (answer.masks.empty()) fail("the teacher-forced answer gave no mask");
            eval::Prediction p;
            p.image_id = std::to_string(s.gt_id); // score_refseg matches predictions by GT id
            p.masks.push_back(mask_rle(answer.masks.front()));
            per_image.push_back({{"id", s.gt_id},
                                 {"image", s.image_id},
                                 {"sentence", s.sentence},
                                 {"answer", kRefsegEvalAnswer},
                                 {"segmentation", rle_json(p.masks.back())}});
            result.predictions.push_back(std::move(p));
        });
    if (!data.samples.empty() && !per_image.empty())
        flush(data.samples[result.predictions.size() - 1].image_id);
    return result;
}

EvalRunResult run_regcap_eval(const std::shared_ptr<const Model>& model,
                              const eval::RegcapDataset& data, const EvalRunOptions& o) {
    make_out_dir(o);
    Session session(model);
    ImageCache images(session, o.should_abort);
    EvalRunResult result;
    for_each_sample(
        data.samples, o, result, [](const auto& s) { return "region \"" + s.image_id + "\""; },
        [&](size_t, const auto& s) {
            images.use(s.image_path);
            // COCO / VG boxes overrun their image by a fraction of a pixel now and then (the
            // reference's RoIAlign takes them as they are; Session refuses a box outside the
            // image): clamped, and counted.
            const double w = static_cast<double>(images.width());
            const double h = static_cast<double>(images.height());
            const Box box{std::clamp(s.box[0], 0.0, w), std::clamp(s.box[1], 0.0, h),
                          std::clamp(s.box[2], 0.0, w), std::clamp(s.box[3], 0.0, h)};
            if (box.x1 != s.box[0] || box.y1 != s.box[1] || box.x2 != s.box[2] ||
                box.y2 != s.box[3]) {
                if (!(box.x2 > box.x1) || !(box.y2 > box.y1))
                    fail("box (", s.box[0], ",", s.box[1], ",", s.box[2], ",", s.box[3],
                         ") has no area inside the ", images.width(), "x", images.height(),
                         " image");
                ++result.clamped_boxes;
            }
            Request request;
            request.task                = Task::RegionCaption; // empty text: the eval instruction
            request.boxes               = {box};
            request.generation          = o.generation;
            const GroundedAnswer answer = session.ask(request, abort_callbacks(o));
            if (answer.cancelled) {
                result.cancelled = true;
                return;
            }
            eval::Prediction p;
            p.image_id = s.image_id;
            p.caption  = clean(answer.raw_text).caption;
            result.files.push_back(write_prediction(
                o, s.image_id, {{"image_id", s.image_id}, {"caption", p.caption}}));
            result.predictions.push_back(std::move(p));
        });
    return result;
}

} // namespace glamm
