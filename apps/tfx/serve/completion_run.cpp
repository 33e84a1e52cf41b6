#include "apps/tfx/serve/completion_run.h"

#include <algorithm>
#include <random>

#include <boost/asio/post.hpp>

#include "apps/tfx/serve/tool_calls.h"

namespace tfx::serve {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string random_hex(size_t digits) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < digits; ++i) out += kHex[rng() % 16];
    return out;
}

// Text from tokens may end inside a UTF-8 character; the JSON keeps a replacement character.
std::string dump(const Json& j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json bytes_of(const std::string& s) {
    Json list = Json::array();
    for (unsigned char c : s) list.push_back(static_cast<int>(c));
    return list;
}

}  // namespace

CompletionRun::CompletionRun(Kind kind, const SamplingFields& fields, bool parse_tools, std::string model_name,
                             const Tokenizer& tokenizer, Engine& engine, Metrics& metrics,
                             std::shared_ptr<Exchange> exchange)
    : kind_(kind),
      fields_(fields),
      parse_tools_(parse_tools),
      model_name_(std::move(model_name)),
      id_((kind == Kind::chat ? "chatcmpl-" : "cmpl-") + random_hex(24)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      tokenizer_(tokenizer),
      engine_(engine),
      metrics_(metrics),
      exchange_(std::move(exchange)),
      arrival_(Clock::now()) {}

void CompletionRun::start(const std::vector<Prompt>& prompts, const GenerationConfig& config, int64_t max_new_tokens,
                          std::shared_ptr<ConstraintAutomaton> constraint, int32_t adapter) {
    prompts_ = prompts;
    std::vector<SequenceJob> jobs;
    const uint64_t seed = fields_.seed.value_or(std::random_device{}());
    for (size_t p = 0; p < prompts.size(); ++p) {
        prompt_tokens_ += static_cast<int64_t>(prompts[p].ids.size());
        for (int64_t sample = 0; sample < fields_.n; ++sample) {
            const size_t index = choices_.size();
            choices_.emplace_back(ChoiceText(tokenizer_, fields_.stop));
            choices_.back().prompt = p;
            if (fields_.stream && parse_tools_ && kind_ == Kind::chat)
                choices_.back().tools.emplace(tool_call_id_prefix(index));
            SequenceJob job;
            job.prompt = prompts[p].ids;
            job.config = config;
            job.config.seed = seed + index;
            job.max_new_tokens = max_new_tokens;
            job.top_logprobs = fields_.logprobs;
            job.constraint = constraint;
            job.adapter = adapter;
            // The engine's thread posts to the I/O thread, which owns this run.
            auto self = shared_from_this();
            auto executor = exchange_->executor();
            job.on_token = [self, executor, index](const Generator::Event& event) {
                net::post(executor, [self, index, event] { self->on_token(index, event); });
            };
            job.on_error = [self, executor, index](const std::string& message) {
                net::post(executor, [self, index, message] { self->on_error(index, message); });
            };
            jobs.push_back(std::move(job));
        }
    }
    const std::vector<Engine::Ticket> tickets = engine_.submit(std::move(jobs));
    for (size_t i = 0; i < tickets.size(); ++i) choices_[i].ticket = tickets[i];
    metrics_.tokens(prompt_tokens_, 0);
    exchange_->on_disconnect([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->cancel_all();
    });
    if (fields_.stream) {
        exchange_->start_events();
        // Completions stream the echoed prompt first, as OpenAI does.
        for (size_t i = 0; i < choices_.size(); ++i) {
            if (kind_ == Kind::chat) {
                stream_piece(i, "", nullptr);
            } else if (!prompts_[choices_[i].prompt].echo.empty()) {
                stream_piece(i, prompts_[choices_[i].prompt].echo, nullptr);
            }
        }
    }
}

std::string CompletionRun::tool_call_id_prefix(size_t choice) const {
    return "call_" + id_.substr(id_.find('-') + 1) + "_" + std::to_string(choice) + "_";
}

void CompletionRun::cancel_all() {
    for (Choice& c : choices_) {
        if (!c.done) engine_.cancel(c.ticket);
        c.done = true;
    }
    if (!answered_) metrics_.request_done(kind_ == Kind::chat ? "/v1/chat/completions" : "/v1/completions", 499);
    answered_ = true;
}

void CompletionRun::add_logprobs(Choice& c, const Generator::Event& event, const std::string& piece) {
    const std::string token = tokenizer_.decode(std::span(&event.token, 1), false);
    if (kind_ == Kind::chat) {
        Json top = Json::array();
        for (const auto& t : event.top) {
            const std::string text = tokenizer_.decode(std::span(&t.token, 1), false);
            top.push_back({{"token", text}, {"logprob", t.logprob}, {"bytes", bytes_of(text)}});
        }
        if (c.logprobs.is_null()) c.logprobs = Json::array();
        c.logprobs.push_back(
            {{"token", token}, {"logprob", event.logprob}, {"bytes", bytes_of(token)}, {"top_logprobs", top}});
        return;
    }
    if (c.logprobs.is_null()) {
        c.logprobs = {{"tokens", Json::array()},
                      {"token_logprobs", Json::array()},
                      {"top_logprobs", Json::array()},
                      {"text_offset", Json::array()}};
    }
    Json top = Json::object();
    for (const auto& t : event.top) top[tokenizer_.decode(std::span(&t.token, 1), false)] = t.logprob;
    c.logprobs["tokens"].push_back(token);
    c.logprobs["token_logprobs"].push_back(event.logprob);
    c.logprobs["top_logprobs"].push_back(top);
    const size_t offset = prompts_[c.prompt].echo.size() + c.text.text().size() - piece.size();
    c.logprobs["text_offset"].push_back(offset);
}

void CompletionRun::on_token(size_t index, const Generator::Event& event) {
    Choice& c = choices_[index];
    if (c.done) return;  // stopped or cancelled; the engine had this token in flight
    const auto now = Clock::now();
    if (!first_token_seen_) {
        first_token_seen_ = true;
        metrics_.time_to_first_token(std::chrono::duration<double>(now - arrival_).count());
    } else if (c.tokens > 0) {
        metrics_.inter_token_latency(std::chrono::duration<double>(now - c.last_token).count());
    }
    c.last_token = now;
    ++c.tokens;
    metrics_.tokens(0, 1);
    std::string piece = c.text.put(event.token);
    if (event.finished && !c.text.stopped()) piece += c.text.end();
    Json logprobs = nullptr;
    if (fields_.logprobs >= 0) {
        add_logprobs(c, event, piece);
        if (fields_.stream) {  // this token's entry alone
            logprobs = kind_ == Kind::chat ? Json{{"content", Json::array({c.logprobs.back()})}}
                                           : Json{{"tokens", {c.logprobs["tokens"].back()}},
                                                  {"token_logprobs", {c.logprobs["token_logprobs"].back()}},
                                                  {"top_logprobs", {c.logprobs["top_logprobs"].back()}},
                                                  {"text_offset", {c.logprobs["text_offset"].back()}}};
        }
    }
    if (fields_.stream && c.tools) {
        const ToolCallStream::Delta delta = c.tools->update(c.text.text(), event.finished || c.text.stopped());
        if (!delta.content.empty() || !delta.tool_calls.empty() || !logprobs.is_null())
            stream_piece(index, delta.content, logprobs, delta.tool_calls.empty() ? Json(nullptr) : delta.tool_calls);
    } else if (fields_.stream && !c.tools && (!piece.empty() || !logprobs.is_null())) {
        stream_piece(index, piece, logprobs);
    }
    if (c.text.stopped()) {
        engine_.cancel(c.ticket);
        return finish_choice(index, "stop");
    }
    if (event.finished) finish_choice(index, event.eos ? "stop" : "length");
}

void CompletionRun::on_error(size_t index, const std::string& message) {
    Choice& c = choices_[index];
    if (c.done) return;
    for (Choice& other : choices_) {
        if (!other.done) engine_.cancel(other.ticket);
        other.done = true;
    }
    if (fields_.stream) {
        exchange_->send_event(dump(Json{{"error", {{"message", message}, {"type", "internal_error"}}}}));
        exchange_->send_event("[DONE]");
        exchange_->end_events();
    } else {
        exchange_->respond(
            http::status::internal_server_error, "application/json",
            dump(Json{
                {"error", {{"message", message}, {"type", "internal_error"}, {"param", nullptr}, {"code", nullptr}}}}));
    }
    metrics_.request_done(kind_ == Kind::chat ? "/v1/chat/completions" : "/v1/completions", 500);
    answered_ = true;
}

void CompletionRun::finish_choice(size_t index, std::string reason) {
    Choice& c = choices_[index];
    c.done = true;
    c.finish_reason = std::move(reason);
    if (fields_.stream) stream_finish(index);
    if (std::all_of(choices_.begin(), choices_.end(), [](const Choice& x) { return x.done; })) complete();
}

Json CompletionRun::chunk(Json choices) const {
    Json j = {{"id", id_},
              {"object", kind_ == Kind::chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", model_name_},
              {"choices", std::move(choices)}};
    if (fields_.include_usage) j["usage"] = nullptr;
    return j;
}

void CompletionRun::stream_piece(size_t index, const std::string& piece, const Json& logprobs, const Json& tool_calls) {
    Choice& c = choices_[index];
    Json choice = {{"index", index}};
    if (kind_ == Kind::chat) {
        Json delta = Json::object();
        if (!c.started) delta["role"] = "assistant";
        if (!piece.empty() || tool_calls.is_null()) delta["content"] = piece;
        if (!tool_calls.is_null()) delta["tool_calls"] = tool_calls;
        c.started = true;
        choice["delta"] = delta;
    } else {
        choice["text"] = piece;
    }
    choice["logprobs"] = logprobs;
    choice["finish_reason"] = nullptr;
    exchange_->send_event(dump(chunk(Json::array({choice}))));
}

void CompletionRun::stream_finish(size_t index) {
    Choice& c = choices_[index];
    Json choice = {{"index", index}};
    std::string reason = c.finish_reason;
    if (kind_ == Kind::chat) {
        Json delta = Json::object();
        if (c.tools) {  // what the parser held back until the reply was whole
            const ToolCallStream::Delta rest = c.tools->update(c.text.text(), true);
            if (!rest.content.empty()) delta["content"] = rest.content;
            if (!rest.tool_calls.empty()) delta["tool_calls"] = rest.tool_calls;
            if (c.tools->made_calls()) reason = "tool_calls";
        }
        choice["delta"] = delta;
    } else {
        choice["text"] = "";
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = reason;
    exchange_->send_event(dump(chunk(Json::array({choice}))));
}

Json CompletionRun::usage() const {
    int64_t completion = 0;
    for (const Choice& c : choices_) completion += c.tokens;
    return {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion},
            {"total_tokens", prompt_tokens_ + completion}};
}

void CompletionRun::complete() {
    if (answered_) return;
    answered_ = true;
    const char* route = kind_ == Kind::chat ? "/v1/chat/completions" : "/v1/completions";
    metrics_.request_done(route, 200);
    int64_t completion = 0;
    for (const Choice& c : choices_) completion += c.tokens;
    exchange_->note("prompt_tokens=" + std::to_string(prompt_tokens_) +
                    " completion_tokens=" + std::to_string(completion));
    if (fields_.stream) {
        if (fields_.include_usage) {
            Json last = chunk(Json::array());
            last["usage"] = usage();
            exchange_->send_event(dump(last));
        }
        exchange_->send_event("[DONE]");
        exchange_->end_events();
        return;
    }
    Json choices = Json::array();
    for (size_t i = 0; i < choices_.size(); ++i) {
        const Choice& c = choices_[i];
        Json choice = {{"index", i}};
        std::string reason = c.finish_reason;
        if (kind_ == Kind::chat) {
            Json message = {{"role", "assistant"}, {"content", c.text.text()}};
            if (parse_tools_) {
                const ParsedReply reply = parse_tool_calls(c.text.text(), tool_call_id_prefix(i));
                if (!reply.tool_calls.empty()) {
                    message["content"] = reply.content.empty() ? Json(nullptr) : Json(reply.content);
                    message["tool_calls"] = reply.tool_calls;
                    reason = "tool_calls";
                }
            }
            choice["message"] = message;
            choice["logprobs"] = c.logprobs.is_null() ? Json(nullptr) : Json{{"content", c.logprobs}};
        } else {
            choice["text"] = prompts_[c.prompt].echo + c.text.text();
            choice["logprobs"] = c.logprobs;
        }
        choice["finish_reason"] = reason;
        choices.push_back(choice);
    }
    const Json body = {{"id", id_},           {"object", kind_ == Kind::chat ? "chat.completion" : "text_completion"},
                       {"created", created_}, {"model", model_name_},
                       {"choices", choices},  {"usage", usage()}};
    exchange_->respond(http::status::ok, "application/json", dump(body));
}

}  // namespace tfx::serve
