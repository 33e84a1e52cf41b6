// `tfx download`, `tfx cache ls` and `tfx cache rm`: the Hub client and its cache.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "registry/hub/hub.h"

namespace tfx::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string human_bytes(double bytes) {
    static constexpr const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    std::size_t unit = 0;
    while (bytes >= 1000 && unit + 1 < std::size(units)) {
        bytes /= 1000;
        ++unit;
    }
    std::ostringstream out;
    out << std::fixed << std::setprecision(unit == 0 ? 0 : 1) << bytes << ' ' << units[unit];
    return out.str();
}

std::string clock_time(double seconds) {
    const auto total = static_cast<long long>(seconds + 0.5);
    std::ostringstream out;
    if (total >= 3600) out << total / 3600 << ':' << std::setw(2) << std::setfill('0');
    out << (total / 60) % 60 << ':' << std::setw(2) << std::setfill('0') << total % 60;
    return out.str();
}

// A bar redrawn in place on a terminal, one line per finished file otherwise (logs, CI).
class ProgressPrinter {
  public:
    explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}

    void report(const hub::Progress& p) {
        const Clock::time_point now = Clock::now();
        if (p.file != file_) {
            file_ = p.file;
            start_ = now;
            resumed_ = p.resumed_from;
            last_draw_ = {};
        }
        if (p.done) {
            if (terminal_) draw(p, now);
            finish_line(p, now);
            file_.clear();
        } else if (terminal_ && now - last_draw_ >= std::chrono::milliseconds(100)) {
            draw(p, now);
            last_draw_ = now;
        }
    }

    // Ends a bar left open by a failed download, so the error starts on its own line.
    void interrupt() {
        if (terminal_ && !file_.empty()) std::cerr << '\n';
        file_.clear();
    }

  private:
    double rate(const hub::Progress& p, Clock::time_point now) const {
        const double seconds = std::chrono::duration<double>(now - start_).count();
        return seconds > 0 ? static_cast<double>(p.bytes - std::min(p.bytes, resumed_)) / seconds : 0;
    }

    void draw(const hub::Progress& p, Clock::time_point now) const {
        constexpr int width = 24;
        const double fraction = p.total > 0 ? static_cast<double>(p.bytes) / static_cast<double>(p.total) : 1.0;
        const int filled = static_cast<int>(fraction * width);
        const double speed = rate(p, now);
        std::string name = p.file.size() > 32 ? "..." + p.file.substr(p.file.size() - 29) : p.file;
        std::ostringstream line;
        line << '\r' << std::left << std::setw(32) << name << ' ' << std::right << std::setw(3)
             << static_cast<int>(fraction * 100) << "% [" << std::string(static_cast<std::size_t>(filled), '#')
             << std::string(static_cast<std::size_t>(width - filled), ' ') << "] "
             << human_bytes(static_cast<double>(p.bytes)) << " / " << human_bytes(static_cast<double>(p.total)) << "  "
             << human_bytes(speed) << "/s";
        if (!p.done && speed > 0) line << "  ETA " << clock_time(static_cast<double>(p.total - p.bytes) / speed);
        line << "\x1b[K";  // clear what a longer previous line left
        std::cerr << line.str() << std::flush;
    }

    void finish_line(const hub::Progress& p, Clock::time_point now) const {
        if (terminal_) {
            std::cerr << '\n';
            return;
        }
        std::cerr << "downloaded " << p.file << " (" << human_bytes(static_cast<double>(p.total));
        if (resumed_ > 0) std::cerr << ", resumed at " << human_bytes(static_cast<double>(resumed_));
        const double speed = rate(p, now);
        if (speed > 0) std::cerr << ", " << human_bytes(speed) << "/s";
        std::cerr << ")\n";
    }

    bool terminal_;
    std::string file_;
    Clock::time_point start_{};
    Clock::time_point last_draw_{};
    std::uint64_t resumed_ = 0;
};

struct DownloadArgs {
    std::string repo;
    std::string revision;
    std::vector<std::string> include, exclude;
    bool offline = false;
};

std::string join(const std::vector<std::string>& items, const char* separator) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
    return out;
}

void run_download(const DownloadArgs& args) {
    hub::HubOptions options;
    if (!args.revision.empty()) options.revision = args.revision;
    options.include = args.include;
    options.exclude = args.exclude;
    options.offline = args.offline;
    options.check_for_updates = true;  // an explicit download refreshes a branch that moved
    auto printer = std::make_shared<ProgressPrinter>(::isatty(STDERR_FILENO) == 1);
    options.on_progress = [printer](const hub::Progress& p) { printer->report(p); };
    hub::DownloadResult result;
    try {
        result = hub::download(args.repo, options);
    } catch (...) {
        printer->interrupt();
        throw;
    }
    for (const auto& warning : result.warnings) std::cerr << "tfx: warning: " << warning << '\n';
    if (!result.absent.empty()) std::cerr << "not in " << result.repo_id << ": " << join(result.absent, ", ") << '\n';
    std::cerr << result.repo_id << '@' << result.revision << " = commit " << result.commit << ": "
              << result.files.size() << " files, " << human_bytes(static_cast<double>(result.bytes_downloaded))
              << " downloaded\n";
    std::cout << result.snapshot.string() << '\n';
}

void run_cache_ls() {
    const auto repos = hub::list_cache();
    if (repos.empty()) {
        std::cout << "no models in the cache (" << hub::hub_cache_dir().string() << ")\n";
        return;
    }
    std::size_t id_width = 4;
    for (const auto& repo : repos) id_width = std::max(id_width, repo.repo_id.size());
    std::cout << std::left << std::setw(static_cast<int>(id_width)) << "REPO"
              << "  " << std::setw(9) << "SIZE"
              << "  " << std::setw(24) << "REVISIONS"
              << "  PATH\n";
    for (const auto& repo : repos) {
        std::vector<std::string> revisions;
        for (const auto& revision : repo.revisions) {
            revisions.push_back(revision.refs.empty() ? revision.commit.substr(0, 8) : join(revision.refs, ", "));
        }
        std::cout << std::setw(static_cast<int>(id_width)) << repo.repo_id << "  " << std::setw(9)
                  << human_bytes(static_cast<double>(repo.size_on_disk)) << "  " << std::setw(24)
                  << (revisions.empty() ? "-" : join(revisions, ", ")) << "  " << repo.path.string() << '\n';
    }
}

}  // namespace

// A progress callback for hub::HubOptions that draws on stderr: also for the model commands,
// whose first run of a Hub id downloads it.
std::function<void(const hub::Progress&)> download_progress_reporter() {
    auto printer = std::make_shared<ProgressPrinter>(::isatty(STDERR_FILENO) == 1);
    return [printer](const hub::Progress& p) { printer->report(p); };
}

void add_hub_commands(CLI::App& app) {
    auto args = std::make_shared<DownloadArgs>();
    auto* download = app.add_subcommand("download", "Download a model from the Hugging Face Hub into the shared cache");
    download->add_option("repo", args->repo, "Hub id: org/name or org/name@revision")->required();
    download->add_option("--revision", args->revision, "Branch, tag or commit (default: main)");
    download->add_option("--include", args->include,
                         "Only files matching this pattern (repeatable; a plain name adds that file)");
    download->add_option("--exclude", args->exclude, "Skip files matching this pattern (repeatable)");
    download->add_flag("--offline", args->offline, "Use the cache only, never the network (also: HF_HUB_OFFLINE=1)");
    download->callback([args] { run_download(*args); });

    auto* cache = app.add_subcommand("cache", "List or remove models in the Hub cache");
    cache->require_subcommand(1);
    cache->add_subcommand("ls", "List cached models: id, size on disk, revisions, folder")->callback(run_cache_ls);
    auto repo = std::make_shared<std::string>();
    auto* rm = cache->add_subcommand("rm", "Delete a model from the cache");
    rm->add_option("repo", *repo, "Hub id: org/name")->required();
    rm->callback([repo] {
        const std::uint64_t freed = hub::remove_from_cache(*repo);
        std::cout << "removed " << *repo << " (" << human_bytes(static_cast<double>(freed)) << ")\n";
    });
}

}  // namespace tfx::cli
