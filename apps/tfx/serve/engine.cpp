#include "apps/tfx/serve/engine.h"

#include <algorithm>

#include "core/log.h"

namespace tfx::serve {

namespace {

// The KV budget in blocks (0: no limit). An empty cache allocates nothing: it only says how
// large one block is.
int64_t kv_blocks_of(const ModelSession& session, const EngineOptions& options) {
    if (options.kv_cache_bytes <= 0) return 0;
    return std::max<int64_t>(1, options.kv_cache_bytes / session.make_cache(options.block_size)->block_bytes());
}

}  // namespace

Engine::Engine(ModelSession& session, EngineOptions options)
    : session_(session),
      options_(options),
      kv_blocks_(kv_blocks_of(session, options)),
      generator_(session,
                 GeneratorOptions{options.block_size, options.max_step_tokens, options.prefix_caching, kv_blocks_}) {
    thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    for (auto& [ticket, submission, job] : queue_) {
        if (job.on_error) job.on_error("the server is shutting down");
    }
    for (auto& [ticket, running] : running_) {
        if (running.job.on_error) running.job.on_error("the server is shutting down");
    }
}

int64_t Engine::blocks_for(int64_t positions) const {
    return (positions + options_.block_size - 1) / options_.block_size;
}

std::vector<Engine::Ticket> Engine::submit(std::vector<SequenceJob> jobs) {
    int64_t largest = 0;
    for (const SequenceJob& job : jobs) {
        largest = std::max(largest, blocks_for(static_cast<int64_t>(job.prompt.size()) + job.max_new_tokens));
    }
    if (kv_blocks_ > 0 && largest > kv_blocks_) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the prompt and max_tokens need " + std::to_string(largest) +
                             " KV cache blocks, more than the server's whole cache (" + std::to_string(kv_blocks_) +
                             " blocks of " + std::to_string(options_.block_size) + " positions); ask for fewer tokens");
    }
    std::vector<Ticket> tickets;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) throw QueueFull("the server is shutting down");
        if (static_cast<int64_t>(queue_.size() + jobs.size()) > options_.max_queue)
            throw QueueFull("the queue is full (" + std::to_string(options_.max_queue) + " sequences waiting)");
        for (SequenceJob& job : jobs) {
            tickets.push_back(next_ticket_++);
            queue_.push_back({tickets.back(), next_submission_, std::move(job)});
        }
        ++next_submission_;
        stats_.queued = static_cast<int64_t>(queue_.size());
    }
    wake_.notify_all();
    return tickets;
}

void Engine::cancel(Ticket ticket) {
    {
        std::lock_guard lock(mutex_);
        cancelled_.insert(ticket);
    }
    wake_.notify_all();
}

Engine::Stats Engine::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void Engine::admit_locked() {
    for (Ticket ticket : cancelled_) {
        if (auto it = running_.find(ticket); it != running_.end()) {
            generator_.cancel(it->second.request);
            ticket_of_.erase(it->second.request);
            running_.erase(it);
        } else {
            std::erase_if(queue_, [&](const Queued& queued) { return queued.ticket == ticket; });
        }
    }
    cancelled_.clear();
    // First come, first served: the head of the queue waits for room rather than be overtaken.
    while (!queue_.empty() && static_cast<int64_t>(running_.size()) < options_.max_batch) {
        const size_t group = head_group_size(static_cast<size_t>(options_.max_batch) - running_.size());
        const SequenceJob& head = queue_.front().job;
        // The group's prompt, and a private last block for each fork.
        const int64_t blocks = blocks_for(static_cast<int64_t>(head.prompt.size())) + static_cast<int64_t>(group) - 1;
        if (kv_blocks_ > 0 && (generator_.paused() > 0 || generator_.blocks_committed() + blocks > kv_blocks_)) break;
        std::vector<GenerationConfig> configs;
        for (size_t i = 0; i < group; ++i) configs.push_back(queue_[i].job.config);
        try {
            const std::vector<Generator::RequestId> requests = generator_.add_group(
                head.prompt, configs, head.max_new_tokens,
                {.top_logprobs = head.top_logprobs, .constraint = head.constraint, .adapter = head.adapter});
            for (size_t i = 0; i < group; ++i) {
                ticket_of_[requests[i]] = queue_[i].ticket;
                running_.emplace(queue_[i].ticket, Running{std::move(queue_[i].job), requests[i]});
            }
        } catch (const std::exception& e) {
            for (size_t i = 0; i < group; ++i) {
                if (queue_[i].job.on_error) queue_[i].job.on_error(e.what());
            }
        }
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(group));
    }
    refresh_stats_locked();
}

size_t Engine::head_group_size(size_t limit) const {
    const Queued& head = queue_.front();
    size_t size = 1;
    while (size < std::min(limit, queue_.size())) {
        const Queued& next = queue_[size];
        if (next.submission != head.submission || next.job.prompt != head.job.prompt ||
            next.job.max_new_tokens != head.job.max_new_tokens || next.job.top_logprobs != head.job.top_logprobs ||
            next.job.adapter != head.job.adapter)
            break;
        ++size;
    }
    return size;
}

void Engine::refresh_stats_locked() {
    stats_.queued = static_cast<int64_t>(queue_.size());
    stats_.running = static_cast<int64_t>(running_.size());
    stats_.kv_blocks_in_use = generator_.cache().blocks_in_use();
    stats_.kv_blocks_allocated = generator_.cache().blocks_allocated();
    stats_.kv_block_bytes = generator_.cache().block_bytes();
    stats_.prefix = generator_.cache().prefix_stats();
    stats_.preemptions = generator_.preemptions();
}

void Engine::run() {
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !cancelled_.empty() || !queue_.empty() || !generator_.idle(); });
            if (stopping_) return;
            admit_locked();
            if (generator_.idle()) {
                // Nothing could be admitted: wait for a cancel or a new request, not spin.
                if (!queue_.empty()) wake_.wait(lock, [&] { return stopping_ || !cancelled_.empty(); });
                continue;
            }
        }
        std::vector<Generator::Event> events;
        try {
            events = generator_.step();
        } catch (const std::exception& e) {
            log::write(log::Level::error, "serve", std::string("a step failed: ") + e.what());
            std::lock_guard lock(mutex_);
            for (auto& [ticket, running] : running_) {
                generator_.cancel(running.request);
                if (running.job.on_error) running.job.on_error(std::string("generation failed: ") + e.what());
            }
            running_.clear();
            ticket_of_.clear();
            continue;
        }
        // Finished sequences leave the books before anyone hears of their last token, so a
        // client that reads /metrics after its answer sees their blocks freed.
        std::vector<Running> finished;
        {
            std::lock_guard lock(mutex_);
            for (const Generator::Event& event : events) {
                if (!event.finished) continue;
                const Ticket ticket = ticket_of_.at(event.request);
                finished.push_back(std::move(running_.at(ticket)));
                running_.erase(ticket);
            }
            ++stats_.steps;
            refresh_stats_locked();
        }
        for (const Generator::Event& event : events) {
            const Ticket ticket = ticket_of_.at(event.request);
            auto done = std::find_if(finished.begin(), finished.end(),
                                     [&](const Running& r) { return r.request == event.request; });
            Running& running = done != finished.end() ? *done : running_.at(ticket);
            if (running.job.on_logits) running.job.on_logits(generator_.last_logits(event.request));
            running.job.on_token(event);
            if (event.finished) ticket_of_.erase(event.request);
        }
    }
}

}  // namespace tfx::serve
