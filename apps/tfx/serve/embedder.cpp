#include "apps/tfx/serve/embedder.h"

#include "apps/tfx/serve/engine.h"
#include "core/forward_call.h"

namespace tfx::serve {

Embedder::Embedder(ModelSession& session, EmbedderOptions options)
    : session_(session), options_(options), width_(session.info().output_size) {
    if (session.info().output_kind != TFX_OUTPUT_HIDDEN_STATE) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         session.architecture() + " has a task head; embeddings need a base model (its hidden states)");
    }
    thread_ = std::thread([this] { run(); });
}

Embedder::~Embedder() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    for (Pending& p : queue_) {
        if (p.job.on_error) p.job.on_error("the server is shutting down");
    }
}

void Embedder::submit(EmbeddingJob job) {
    const auto inputs = static_cast<int64_t>(job.inputs.size());
    {
        std::lock_guard lock(mutex_);
        if (stopping_) throw QueueFull("the server is shutting down");
        if (queued_inputs_ + inputs > options_.max_queue)
            throw QueueFull("the queue is full (" + std::to_string(options_.max_queue) + " inputs waiting)");
        Pending& p = queue_.emplace_back();
        p.vectors.resize(job.inputs.size());
        p.job = std::move(job);
        queued_inputs_ += inputs;
        stats_.queued = queued_inputs_;
    }
    wake_.notify_all();
}

Embedder::Stats Embedder::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

std::vector<std::pair<Embedder::Pending*, size_t>> Embedder::take_pass_locked() {
    std::vector<std::pair<Pending*, size_t>> pass;
    int64_t tokens = 0;
    for (Pending& p : queue_) {
        for (; p.next < p.job.inputs.size(); ++p.next) {
            const auto n = static_cast<int64_t>(p.job.inputs[p.next].size());
            if (!pass.empty() && options_.max_step_tokens > 0 && tokens + n > options_.max_step_tokens) return pass;
            tokens += n;
            pass.emplace_back(&p, p.next);
        }
    }
    return pass;
}

void Embedder::run() {
    ForwardCall call(session_);
    std::vector<SequenceInput> sequences;
    while (true) {
        // Pending entries stay put while others are queued behind them (a deque's push_back
        // keeps references), and only this thread removes them.
        std::vector<std::pair<Pending*, size_t>> pass;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            pass = take_pass_locked();
            queued_inputs_ -= static_cast<int64_t>(pass.size());
            stats_.queued = queued_inputs_;
            stats_.running = static_cast<int64_t>(pass.size());
        }
        sequences.clear();
        for (const auto& [p, i] : pass)
            sequences.push_back({.ids = p->job.inputs[i], .output = SequenceInput::Output::all});
        std::string error;
        try {
            const std::span<const float> hidden = call.run(sequences);
            size_t row = 0;
            for (const auto& [p, i] : pass) {
                const size_t rows = p->job.inputs[i].size();
                p->vectors[i] = pool_hidden_states(hidden.subspan(row * width_, rows * width_),
                                                   static_cast<int64_t>(rows), width_, options_.pooling, true);
                row += rows;
            }
        } catch (const std::exception& e) {
            error = e.what();
        }
        // Passes take inputs in queue order, so the finished requests are the queue's front.
        std::vector<Pending> finished;
        {
            std::lock_guard lock(mutex_);
            if (!error.empty()) {
                for (const auto& [p, i] : pass) p->error = error;
            }
            while (!queue_.empty() && queue_.front().next == queue_.front().job.inputs.size()) {
                finished.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            stats_.running = 0;
            ++stats_.steps;
        }
        for (Pending& p : finished) {
            if (p.error.empty())
                p.job.on_done(std::move(p.vectors));
            else if (p.job.on_error)
                p.job.on_error(p.error);
        }
    }
}

}  // namespace tfx::serve
