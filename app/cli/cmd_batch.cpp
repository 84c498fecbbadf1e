// glamm batch: one task over a folder of images, one JSON line per image in OUT/results.jsonl
// (masks under OUT/masks/<image-stem>/, the settings in OUT/batch.json), resumable after a kill
// and splittable into shards.
// Crash safety: an image's masks are written (atomically) before its line; the line is appended
// with one write() and fsync'ed; on start a torn last line (no trailing newline) is cut off.
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/result_writer.h"
#include "session.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;

namespace glamm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
    g_interrupted = true;
}

const char* kResultsFile  = "results.jsonl";
const char* kSettingsFile = "batch.json"; // what the results were made with

bool is_image_file(const fs::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    static const std::set<std::string> known = {".png",  ".jpg", ".jpeg", ".bmp", ".tif", ".tiff",
                                                ".webp", ".jp2", ".pbm",  ".pgm", ".ppm"};
    return known.count(ext) != 0;
}

// Image files under `dir` (recursively), as paths relative to it, sorted bytewise: the same list
// on every machine, which is what makes --shard deterministic.
std::vector<std::string> list_images(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail(dir, ": not a folder");
    std::vector<std::string> images;
    for (auto it = fs::recursive_directory_iterator(
             dir, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && is_image_file(it->path()))
            images.push_back(fs::relative(it->path(), dir).generic_string());
    }
    if (ec) fail("cannot list ", dir, ": ", ec.message());
    std::sort(images.begin(), images.end());
    return images;
}

struct Shard {
    int64_t index = 0, count = 1;
};

Shard parse_shard(const std::string& text) {
    Shard shard;
    char slash = 0;
    std::stringstream ss(text);
    if (!(ss >> shard.index >> slash >> shard.count) || slash != '/' || !(ss >> std::ws).eof() ||
        shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
        throw UsageError("--shard expects I/N with 0 <= I < N (e.g. 0/4), got \"" + text + "\"");
    return shard;
}

Task parse_task(const std::string& name) {
    if (name == "gcg") return Task::GroundedCaption;
    if (name == "caption") return Task::ImageCaption;
    if (name == "segment") return Task::ReferringSegmentation;
    if (name == "region") return Task::RegionCaption;
    throw UsageError("--task must be gcg, caption, segment or region, got \"" + name + "\"");
}

// Reads the images already done from results.jsonl, first cutting off a torn last line (a line
// without its newline: the process died while appending it).
std::set<std::string> resume(const std::string& path) {
    std::set<std::string> done;
    std::error_code ec;
    if (!fs::exists(path, ec)) return done;
    const std::string contents = read_file(path);
    const size_t complete      = contents.empty() ? 0 : contents.rfind('\n') + 1; // npos + 1 = 0
    if (complete != contents.size()) {
        if (::truncate(path.c_str(), static_cast<off_t>(complete)) != 0)
            fail("cannot cut the torn last line of ", path, ": ", std::strerror(errno));
        std::fprintf(stderr, "batch: dropped a torn last line of %s (%zu bytes)\n", path.c_str(),
                     contents.size() - complete);
    }
    size_t begin = 0, number = 0;
    while (begin < complete) {
        const size_t end = contents.find('\n', begin);
        ++number;
        const std::string line = contents.substr(begin, end - begin);
        begin                  = end + 1;
        if (line.empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded() || !j.is_object() || !j.contains("image") || !j["image"].is_string())
            fail(path, " line ", number, " is not a result line (no \"image\"); fix or remove it");
        done.insert(j["image"].get<std::string>());
    }
    return done;
}

// Appends one line with a single write() and makes it durable before returning.
void append_line(int fd, const std::string& path, const std::string& line) {
    const std::string data = line + "\n";
    size_t written         = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot append to ", path, ": ", std::strerror(errno));
        written += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) fail("cannot sync ", path, ": ", std::strerror(errno));
}

// Mask folders are named after the image without its extension; images whose names would then
// meet (a.png and a.jpg; a.png.jpg and a.png) keep their whole path, until no two meet.
std::map<std::string, std::string> name_mask_folders(const std::vector<std::string>& images) {
    std::map<std::string, std::string> folder;
    for (const auto& rel : images) folder[rel] = fs::path(rel).replace_extension().generic_string();
    for (bool clash = true; clash;) {
        clash = false;
        std::map<std::string, std::vector<std::string>> users;
        for (const auto& [rel, name] : folder) users[name].push_back(rel);
        for (const auto& [name, rels] : users) {
            if (rels.size() < 2) continue;
            for (const auto& rel : rels)
                if (folder[rel] != rel) {
                    folder[rel] = rel;
                    clash       = true;
                }
        }
    }
    return folder;
}

// The settings a results.jsonl was made with: a rerun into the same folder must use the same
// ones, or "already done" would mean done with something else.
nlohmann::json batch_settings(const Request& request, const std::string& model_dir,
                              const std::string& vision_tower_dir) {
    nlohmann::json boxes = nlohmann::json::array();
    for (const Box& b : request.boxes) boxes.push_back({b.x1, b.y1, b.x2, b.y2});
    return {{"task", static_cast<int>(request.task)},
            {"prompt", request.text},
            {"boxes", boxes},
            {"model", model_dir},
            {"vision_tower", vision_tower_dir},
            {"max_new_tokens", request.generation.max_new_tokens},
            {"temperature", request.generation.temperature},
            {"top_p", request.generation.top_p},
            {"seed", request.generation.seed}};
}

// Writes OUT/batch.json while the folder holds no result yet; once it does, refuses other settings.
void check_settings(const std::string& path, const nlohmann::json& settings, bool has_results) {
    std::error_code ec;
    if (!has_results || !fs::exists(path, ec)) {
        // (A results.jsonl without batch.json comes from before the check: adopted as it is.)
        write_file_atomic(path, settings.dump(2) + "\n");
        return;
    }
    const nlohmann::json saved = nlohmann::json::parse(read_file(path), nullptr, false);
    if (saved.is_discarded()) fail(path, " is not valid JSON; fix or remove it");
    std::string differ;
    for (const auto& item : settings.items())
        if (!saved.contains(item.key()) || saved[item.key()] != item.value())
            differ += (differ.empty() ? "" : ", ") + item.key();
    if (!differ.empty())
        throw UsageError("the results in " + fs::path(path).parent_path().string() +
                         " were made with other settings (" + differ + ": see " + path +
                         "); give another --out, or remove the folder to start over");
}

std::string format_duration(double seconds) {
    const long long s = static_cast<long long>(seconds + 0.5);
    char text[32];
    if (s >= 3600)
        std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(text, sizeof text, "%lld:%02lld", s / 60, s % 60);
    return text;
}

int run_batch(const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"task", "images", "out", "shard", "prompt", "box", "max-new-tokens",
                               "temperature", "top-p", "seed"});
    Args args(argv, {}, known);
    const Task task              = parse_task(args.require("task"));
    const std::string images_dir = args.require("images");
    const std::string out_dir    = args.require("out");
    const Shard shard            = parse_shard(args.get_or("shard", "0/1"));
    Request request;
    request.task = task;
    request.text = args.get_or("prompt", "");
    for (const auto& b : args.all("box")) request.boxes.push_back(parse_box(b));
    if (task == Task::ReferringSegmentation && request.text.empty())
        throw UsageError("--task segment needs --prompt EXPRESSION (what to segment)");
    if (task != Task::RegionCaption && !request.boxes.empty())
        throw UsageError("--box is only used with --task region");
    request.generation.max_new_tokens =
        static_cast<int>(args.get_int("max-new-tokens", 512, 1, kIntMax));
    read_sampling(args, request.generation.temperature, request.generation.top_p);
    request.generation.seed        = static_cast<uint64_t>(args.get_int("seed", 0));
    // Everything about the request that does not depend on the image is checked here, once: a
    // mistake found per image would be recorded as an error on every image.
    const size_t boxes_per_image = task == Task::RegionCaption && request.boxes.empty()
                                       ? 1 // the whole image
                                       : request.boxes.size();
    try {
        Session::instruction_for(task, request.text, boxes_per_image);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }

    // This shard's images: index % N == I over the sorted list of every image.
    const std::vector<std::string> all = list_images(images_dir);
    std::vector<std::string> mine;
    for (size_t i = 0; i < all.size(); ++i)
        if (static_cast<int64_t>(i % static_cast<size_t>(shard.count)) == shard.index)
            mine.push_back(all[i]);
    const std::map<std::string, std::string> mask_folders = name_mask_folders(all);
    auto mask_folder = [&](const std::string& rel) { return "masks/" + mask_folders.at(rel); };

    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) fail("cannot create the output folder ", out_dir, ": ", ec.message());
    const std::string results        = (fs::path(out_dir) / kResultsFile).string();
    const std::set<std::string> done = resume(results);
    // Ctrl-C / SIGTERM from here on (the model load can take minutes): stop, exit 3.
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    const ModelOptions model_options = model_options_from(args);
    check_settings((fs::path(out_dir) / kSettingsFile).string(),
                   batch_settings(request, model_options.model_dir, model_options.vision_tower_dir),
                   !done.empty());
    std::vector<std::string> todo;
    for (const auto& rel : mine)
        if (!done.count(rel)) todo.push_back(rel);
    std::fprintf(
        stderr, "batch: %zu image(s) in %s, shard %lld/%lld has %zu, %zu already done, %zu to do\n",
        all.size(), images_dir.c_str(), static_cast<long long>(shard.index),
        static_cast<long long>(shard.count), mine.size(), mine.size() - todo.size(), todo.size());
    if (todo.empty()) return kExitOk;

    const int fd = ::open(results.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot open ", results, ": ", std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};

    const auto model = load_model_unless_interrupted(model_options, g_interrupted);
    if (!model) return kExitCancelled;
    Session session(model);
    Callbacks callbacks;
    callbacks.should_abort = [] { return g_interrupted.load(); };

    using Clock      = std::chrono::steady_clock;
    const auto start = Clock::now();
    size_t failed    = 0;
    for (size_t i = 0; i < todo.size(); ++i) {
        if (g_interrupted) break;
        const std::string& rel = todo[i];
        const std::string path = (fs::path(images_dir) / rel).string();
        nlohmann::ordered_json line;
        line["image"] = rel;
        Request r     = request;
        try {
            // What can fail because of this image (unreadable, corrupt, too large or too
            // elongated, smaller than the boxes) is recorded on its line; anything else (a full
            // disk, out of memory) ends the run with no line, so a rerun retries the image.
            const Image image = load_image(path);
            session.set_image(image, callbacks.should_abort);
            if (task == Task::RegionCaption && r.boxes.empty())
                r.boxes = {Box{0, 0, double(image.width), double(image.height)}};
            for (const Box& b : r.boxes)
                if (b.x2 > double(image.width) || b.y2 > double(image.height))
                    fail("box (", b.x1, ",", b.y1, ",", b.x2, ",", b.y2, ") lies outside the ",
                         image.width, "x", image.height, " image");
        } catch (const Cancelled&) {
            break; // interrupted while encoding: this image stays to do
        } catch (const std::exception& e) {
            ++failed;
            line["error"] = e.what();
            std::fprintf(stderr, "batch: %s: %s\n", rel.c_str(), e.what());
            append_line(fd, results, line.dump());
            continue;
        }
        {
            const GroundedAnswer answer = session.ask(r, callbacks);
            if (answer.cancelled) break; // interrupted: this image stays to do
            // Masks first, each written atomically; then the line that points at them.
            const std::string folder = mask_folder(rel);
            fs::remove_all(fs::path(out_dir) / folder, ec);
            std::vector<std::string> files;
            for (size_t k = 0; k < answer.masks.size(); ++k) {
                const Mask& m = answer.masks[k];
                std::vector<uint8_t> grey(m.data.size());
                for (size_t p = 0; p < grey.size(); ++p) grey[p] = m.data[p] ? 255 : 0;
                char name[32];
                std::snprintf(name, sizeof name, "/mask_%03zu.png", k);
                files.push_back(folder + name);
                const fs::path file = fs::path(out_dir) / files.back();
                fs::create_directories(file.parent_path());
                save_png(file.string(), grey.data(), m.width, m.height, 1);
            }
            const auto fields =
                nlohmann::ordered_json::parse(result_json(answer, model->model_dir()));
            for (const auto& item : fields.items()) line[item.key()] = item.value();
            line["mask_folder"] = folder; // this image's own, whether or not it has masks
            line["mask_files"]  = files;
        }
        append_line(fd, results, line.dump());
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        const double per     = elapsed / double(i + 1);
        std::fprintf(stderr, "batch: [%zu/%zu] %s  %.2f s/image, elapsed %s, ETA %s\n", i + 1,
                     todo.size(), rel.c_str(), per, format_duration(elapsed).c_str(),
                     format_duration(per * double(todo.size() - i - 1)).c_str());
    }
    if (g_interrupted) {
        std::fprintf(stderr, "batch: interrupted; run the same command again to resume\n");
        return kExitCancelled;
    }
    if (failed) {
        std::fprintf(stderr, "batch: %zu image(s) failed (lines with \"error\")\n", failed);
        return kExitFailure;
    }
    return kExitOk;
}

const Registrar batch{Command{
    "batch", "one task over a folder of images (resumable, shardable)",
    std::string(
        "usage: glamm batch --task gcg|caption|segment|region --images DIR --out DIR\n"
        "                   [--shard I/N] [--prompt TEXT] [--box x1,y1,x2,y2] [options]\n\n"
        "Runs the task on every image under --images (recursively, sorted by path) and appends\n"
        "one JSON line per image to OUT/results.jsonl: {\"image\": path relative to --images, the\n"
        "result.json fields (text, raw_text, phrases, masks as COCO RLE, boxes, model, timings),\n"
        "\"mask_folder\", \"mask_files\"}; masks also go to OUT/masks/<image-stem>/mask_NNN.png.\n"
        "An image that cannot be read or encoded (or is smaller than the boxes) gets a line with\n"
        "\"error\" instead (delete it to retry); other failures end the run with no line.\n"
        "Resume: run the same command again; images with a line are skipped (a line torn by a\n"
        "kill is dropped and redone). OUT/batch.json records the task, prompt, boxes, model and\n"
        "generation settings: a rerun with other ones is refused. --shard I/N takes the images\n"
        "whose index in the sorted list is I modulo N, so N machines with I = 0..N-1 share a job\n"
        "(give each its own --out; see docs/batch.md for Slurm and Kubernetes).\n\n"
        "  --task T              gcg, caption, segment (needs --prompt) or region (--box, "
        "repeatable,\n"
        "                        the same boxes for every image; default: the whole image)\n"
        "  --prompt TEXT         override the task's instruction (segment: the expression)\n"
        "  --max-new-tokens N    default 512\n"
        "  --temperature T, --top-p P, --seed S   sampling (default greedy)\n") +
        model_options_help() +
        "\nexit codes: 0 all done, 1 some image failed (see its line) or the run failed, 2 bad\n"
        "command line or other settings than the folder's, 3 interrupted (resumable)\n",
    run_batch}};

} // namespace
} // namespace glamm::cli
