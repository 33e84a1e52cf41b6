#include "apps/tfx/serve/openai_server.h"

#include <bit>
#include <cmath>

#include <boost/asio/post.hpp>

#include <nlohmann/json.hpp>

#include "apps/tfx/serve/completion_run.h"
#include "apps/tfx/serve/error_body.h"
#include "apps/tfx/serve/openai_request.h"
#include "core/json_file.h"
#include "core/log.h"

namespace tfx::serve {
namespace {

using Json = nlohmann::ordered_json;

// encoding_format "base64": the vector's little-endian f32 bytes in standard base64.
std::string base64_of_floats(const std::vector<float>& v) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static_assert(std::endian::native == std::endian::little, "embeddings are sent as little-endian f32");
    const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
    const size_t n = v.size() * sizeof(float);
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t chunk = (uint32_t{bytes[i]} << 16) | (i + 1 < n ? uint32_t{bytes[i + 1]} << 8 : 0) |
                               (i + 2 < n ? uint32_t{bytes[i + 2]} : 0);
        out += kAlphabet[(chunk >> 18) & 63];
        out += kAlphabet[(chunk >> 12) & 63];
        out += i + 1 < n ? kAlphabet[(chunk >> 6) & 63] : '=';
        out += i + 2 < n ? kAlphabet[chunk & 63] : '=';
    }
    return out;
}

std::string path_of(const HttpRequest& request) {
    const std::string target(request.target());
    return target.substr(0, target.find('?'));
}

}  // namespace

OpenAiServer::OpenAiServer(ModelSession& session, const Tokenizer& tokenizer, Engine* engine, Embedder* embedder,
                           ServerOptions options)
    : session_(session), tokenizer_(tokenizer), engine_(engine), embedder_(embedder), options_(std::move(options)) {
    model_defaults_ = GenerationConfig::from_model(
        session.config(), load_optional_json_file(session.model_dir() / "generation_config.json"));
    // Each choice is one sampled or greedy sequence (OpenAI's API has no beams); the request's
    // own `stop` replaces the model's stop strings.
    if (model_defaults_.num_beams > 1 || !model_defaults_.stop_strings.empty() || model_defaults_.max_time) {
        log::write(log::Level::warn, "tfx serve",
                   "generation_config.json: num_beams, num_return_sequences, stop_strings and max_time are not used "
                   "by the server (one sequence per choice; requests give their own stop strings)");
    }
    model_defaults_.num_beams = 1;
    model_defaults_.num_return_sequences = 1;
    model_defaults_.stop_strings.clear();
    model_defaults_.max_time.reset();
    const int64_t model_limit = session.info().max_positions;
    if (options_.context_length <= 0 || (model_limit > 0 && options_.context_length > model_limit))
        options_.context_length = model_limit > 0 ? model_limit : 4096;
}

void OpenAiServer::error(const std::shared_ptr<Exchange>& exchange, const std::string& route, http::status status,
                         const std::string& message, const std::string& type, const std::string& param,
                         const HttpHeaders& headers) {
    metrics_.request_done(route, static_cast<int>(status));
    exchange->respond(status, "application/json", openai_error_body(message, type, param), headers);
}

void OpenAiServer::handle(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
    const std::string path = path_of(request);
    const bool post = request.method() == http::verb::post, get = request.method() == http::verb::get;
    struct Route {
        const char* path;
        bool post;
    };
    static constexpr Route kRoutes[] = {
        {"/v1/chat/completions", true}, {"/v1/completions", true}, {"/v1/embeddings", true},
        {"/v1/models", false},          {"/health", false},        {"/metrics", false}};
    const Route* route = nullptr;
    for (const Route& r : kRoutes) {
        if (path == r.path) route = &r;
    }
    if (!route) {
        return error(exchange, "other", http::status::not_found,
                     "Invalid URL (" + std::string(request.method_string()) + " " + path + ")",
                     "invalid_request_error");
    }
    if (route->post ? !post : !get) {
        return error(exchange, path, http::status::method_not_allowed,
                     std::string("method ") + std::string(request.method_string()) + " not allowed on " + path +
                         " (use " + (route->post ? "POST" : "GET") + ")",
                     "invalid_request_error", "", {{"Allow", route->post ? "POST" : "GET"}});
    }
    if (!options_.api_key.empty() && path.starts_with("/v1/") &&
        request[http::field::authorization] != "Bearer " + options_.api_key) {
        return error(exchange, path, http::status::unauthorized,
                     request[http::field::authorization].empty()
                         ? "missing API key: send the header 'Authorization: Bearer KEY'"
                         : "incorrect API key provided",
                     "invalid_request_error");
    }
    if (path == "/v1/chat/completions") return chat(request, exchange);
    if (path == "/v1/completions") return completions(request, exchange);
    if (path == "/v1/embeddings") return embeddings(request, exchange);
    if (path == "/v1/models") return models(exchange);
    if (path == "/health") return health(exchange);
    metrics_.request_done(path, 200);
    exchange->respond(http::status::ok, "text/plain; version=0.0.4", metrics_.render(stats()));
}

// The model, then each LoRA adapter a request may name instead (as vLLM lists them: root is
// the adapter's folder, parent the base model).
void OpenAiServer::models(const std::shared_ptr<Exchange>& exchange) {
    metrics_.request_done("/v1/models", 200);
    Json data = Json::array();
    data.push_back({{"id", options_.model_name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "tfx"},
                    {"max_model_len", options_.context_length}});
    for (const auto& [name, dir] : session_.lora_adapter_dirs()) {
        data.push_back({{"id", name},
                        {"object", "model"},
                        {"created", 0},
                        {"owned_by", "tfx"},
                        {"root", dir},
                        {"parent", options_.model_name},
                        {"max_model_len", options_.context_length}});
    }
    const Json body = {{"object", "list"}, {"data", data}};
    exchange->respond(http::status::ok, "application/json", body.dump());
}

// A one-token forward through the running engine or embedder: a model whose weights give
// NaNs fails it.
void OpenAiServer::health(const std::shared_ptr<Exchange>& exchange) {
    auto executor = exchange->executor();
    auto answer = [this, exchange, executor](bool finite, const std::string& message) {
        net::post(executor, [this, exchange, finite, message] {
            if (finite) {
                metrics_.request_done("/health", 200);
                exchange->respond(http::status::ok, "application/json", R"({"status":"ok"})");
            } else {
                error(exchange, "/health", http::status::service_unavailable, message, "internal_error");
            }
        });
    };
    const std::string not_finite = "the model's outputs are not finite (NaN or infinity)";
    std::vector<int32_t> one_token = {model_defaults_.eos_token_ids.empty() ? 0
                                                                            : model_defaults_.eos_token_ids.front()};
    if (const auto bos = tokenizer_.special_id("bos_token")) one_token = {*bos};
    try {
        if (embedder_) {
            EmbeddingJob job;
            job.inputs = {one_token};
            job.on_done = [answer, not_finite](std::vector<std::vector<float>> vectors) {
                bool finite = true;
                for (float v : vectors.front()) finite = finite && std::isfinite(v);
                answer(finite, not_finite);
            };
            job.on_error = [answer](const std::string& message) { answer(false, message); };
            return embedder_->submit(std::move(job));
        }
        SequenceJob job;
        job.prompt = one_token;
        job.config = model_defaults_;
        job.config.do_sample = false;
        job.config.repetition_penalty = 1.0f;
        job.max_new_tokens = 1;
        auto finite = std::make_shared<bool>(true);
        job.on_logits = [finite](std::span<const float> logits) {
            for (float v : logits) *finite = *finite && std::isfinite(v);
        };
        job.on_token = [answer, finite, not_finite](const Generator::Event&) { answer(*finite, not_finite); };
        job.on_error = [answer](const std::string& message) { answer(false, message); };
        engine_->submit({std::move(job)});
    } catch (const std::exception& e) {
        error(exchange, "/health", http::status::service_unavailable, e.what(), "internal_error");
    }
}

Engine::Stats OpenAiServer::stats() const {
    if (engine_) return engine_->stats();
    const Embedder::Stats e = embedder_->stats();
    Engine::Stats s;
    s.queued = e.queued;
    s.running = e.running;
    s.steps = e.steps;
    return s;
}

std::shared_ptr<ConstraintAutomaton> OpenAiServer::constraint_for(const SamplingFields& f) {
    if (f.constraint_pattern.empty()) return nullptr;
    // Patterns kept at most; a server seeing many distinct schemas compiles them again.
    constexpr size_t kKeptPatterns = 64;
    const std::lock_guard lock(constraints_mutex_);
    if (const auto it = constraints_.find(f.constraint_pattern); it != constraints_.end()) return it->second;
    if (!token_bytes_) token_bytes_ = std::make_shared<const TokenBytes>(tokenizer_.token_bytes());
    if (constraints_.size() >= kKeptPatterns) constraints_.clear();
    auto automaton =
        std::make_shared<ConstraintAutomaton>(f.constraint_pattern, token_bytes_, model_defaults_.eos_token_ids);
    constraints_.emplace(f.constraint_pattern, automaton);
    return automaton;
}

GenerationConfig OpenAiServer::generation_config(const SamplingFields& f) const {
    GenerationConfig g = model_defaults_;
    g.max_length.reset();
    g.do_sample = f.temperature > 0.0f;
    g.temperature = f.temperature > 0.0f ? f.temperature : 1.0f;
    g.top_p = f.top_p;
    g.top_k = f.top_k;
    g.min_p = f.min_p;
    g.repetition_penalty = f.repetition_penalty;
    g.presence_penalty = f.presence_penalty;
    g.frequency_penalty = f.frequency_penalty;
    g.ignore_eos = f.ignore_eos;
    return g;
}

int64_t OpenAiServer::max_new_tokens(const SamplingFields& f, int64_t prompt_tokens) const {
    const int64_t room = options_.context_length - prompt_tokens;
    if (room <= 0 || (f.max_tokens && *f.max_tokens > room)) {
        throw RequestError(f.max_tokens ? "max_tokens" : "messages",
                           "This model's maximum context length is " + std::to_string(options_.context_length) +
                               " tokens. However, you requested " +
                               std::to_string(prompt_tokens + f.max_tokens.value_or(0)) + " tokens (" +
                               std::to_string(prompt_tokens) + " in the prompt, " +
                               std::to_string(f.max_tokens.value_or(0)) +
                               " for the completion). Please reduce the prompt or max_tokens.");
    }
    return f.max_tokens.value_or(room);
}

void OpenAiServer::check_in_vocabulary(std::span<const int32_t> ids, const std::string& field,
                                       const std::string& where) const {
    const int64_t vocab = session_.info().vocab_size;
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab)
            throw RequestError(field, where + "token id " + std::to_string(id) + " is outside the vocabulary (size " +
                                          std::to_string(vocab) + ")");
    }
}

std::optional<int32_t> OpenAiServer::adapter_of(const std::string& model) const {
    if (model == options_.model_name) return lora::kActiveAdapters;
    const std::vector<std::string> adapters = session_.lora_adapters();
    const auto it = std::find(adapters.begin(), adapters.end(), model);
    if (it == adapters.end()) return std::nullopt;
    return static_cast<int32_t>(it - adapters.begin());
}

bool OpenAiServer::refused(const std::string& model, const std::string& route,
                           const std::shared_ptr<Exchange>& exchange) {
    if (!adapter_of(model)) {
        std::string served = "'" + options_.model_name + "'";
        for (const std::string& name : session_.lora_adapters()) served += ", '" + name + "'";
        error(exchange, route, http::status::not_found,
              "The model '" + model + "' does not exist (this server serves " + served + ")", "invalid_request_error",
              "model");
        return true;
    }
    const bool embedding_route = route == "/v1/embeddings";
    if (embedding_route && model != options_.model_name) {
        error(exchange, route, http::status::bad_request,
              "'" + model + "' is a LoRA adapter; adapters serve /v1/chat/completions and /v1/completions",
              "invalid_request_error", "model");
        return true;
    }
    if (embedding_route ? !embedder_ : !engine_) {
        error(exchange, route, http::status::bad_request,
              "'" + model + "' (" + session_.architecture() + ") " +
                  (embedding_route ? "is a language model: it serves /v1/chat/completions and /v1/completions; "
                                     "embeddings need a base encoder model"
                                   : "is an embedding model: it serves /v1/embeddings only"),
              "invalid_request_error", "model");
        return true;
    }
    if (draining_) {
        error(exchange, route, http::status::service_unavailable, "the server is shutting down", "unavailable");
        return true;
    }
    return false;
}

void OpenAiServer::answer_errors(const std::string& route, const std::shared_ptr<Exchange>& exchange,
                                 const std::function<void()>& handle) {
    try {
        handle();
    } catch (const RequestError& e) {
        error(exchange, route, http::status::bad_request, e.what(), "invalid_request_error", e.param);
    } catch (const QueueFull& e) {
        error(exchange, route, http::status::too_many_requests, std::string(e.what()) + "; retry later",
              "rate_limit_error", "", {{"Retry-After", "1"}});
    } catch (const sdk::Error& e) {
        error(exchange, route, http::status::bad_request, e.what(), "invalid_request_error");
    }
}

void OpenAiServer::chat(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
    const std::string route = "/v1/chat/completions";
    answer_errors(route, exchange, [&] {
        const ChatRequest r = parse_chat_request(request.body());
        if (refused(r.model, route, exchange)) return;
        Tokenizer::ChatOptions chat_options;
        chat_options.tools = r.tools;
        std::vector<int32_t> ids;
        try {
            ids = tokenizer_.encode_chat(r.messages, chat_options);
        } catch (const std::exception& e) {
            throw RequestError("messages", std::string("the chat template could not render the messages: ") + e.what());
        }
        const int64_t max_new = max_new_tokens(r, static_cast<int64_t>(ids.size()));
        auto run = std::make_shared<CompletionRun>(CompletionRun::Kind::chat, r, !r.tools.is_null(), r.model,
                                                   tokenizer_, *engine_, metrics_, exchange);
        run->start({{std::move(ids), ""}}, generation_config(r), max_new, constraint_for(r), *adapter_of(r.model));
    });
}

void OpenAiServer::completions(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
    const std::string route = "/v1/completions";
    answer_errors(route, exchange, [&] {
        const CompletionRequest r = parse_completion_request(request.body());
        if (refused(r.model, route, exchange)) return;
        std::vector<CompletionRun::Prompt> prompts;
        int64_t longest = 0;
        for (const auto& prompt : r.prompts) {
            CompletionRun::Prompt p;
            if (const auto* text = std::get_if<std::string>(&prompt)) {
                p.ids = tokenizer_.encode(*text, true);
                if (r.echo) p.echo = *text;
            } else {
                p.ids = std::get<std::vector<int32_t>>(prompt);
                check_in_vocabulary(p.ids, "prompt", "");
                if (r.echo) p.echo = tokenizer_.decode(p.ids, true);
            }
            if (p.ids.empty()) throw RequestError("prompt", "the prompt encodes to no tokens");
            longest = std::max<int64_t>(longest, static_cast<int64_t>(p.ids.size()));
            prompts.push_back(std::move(p));
        }
        const int64_t max_new = max_new_tokens(r, longest);
        auto run = std::make_shared<CompletionRun>(CompletionRun::Kind::completion, r, false, r.model, tokenizer_,
                                                   *engine_, metrics_, exchange);
        run->start(prompts, generation_config(r), max_new, constraint_for(r), *adapter_of(r.model));
    });
}

void OpenAiServer::embeddings(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) {
    const std::string route = "/v1/embeddings";
    answer_errors(route, exchange, [&] {
        const EmbeddingRequest r = parse_embedding_request(request.body());
        if (refused(r.model, route, exchange)) return;
        if (r.dimensions && *r.dimensions != embedder_->dimensions()) {
            throw RequestError("dimensions", "this model's embeddings have " + std::to_string(embedder_->dimensions()) +
                                                 " dimensions and it cannot shorten them; got " +
                                                 std::to_string(*r.dimensions));
        }
        EmbeddingJob job;
        int64_t tokens = 0;
        for (size_t i = 0; i < r.inputs.size(); ++i) {
            const std::string at = "input[" + std::to_string(i) + "]";
            std::vector<int32_t> ids;
            if (const auto* text = std::get_if<std::string>(&r.inputs[i]))
                ids = tokenizer_.encode(*text, true);
            else
                ids = std::get<std::vector<int32_t>>(r.inputs[i]);
            check_in_vocabulary(ids, "input", at + ": ");
            if (ids.empty()) throw RequestError("input", at + " encodes to no tokens");
            if (static_cast<int64_t>(ids.size()) > options_.context_length) {
                throw RequestError("input", at + " has " + std::to_string(ids.size()) +
                                                " tokens; this model takes at most " +
                                                std::to_string(options_.context_length));
            }
            tokens += static_cast<int64_t>(ids.size());
            job.inputs.push_back(std::move(ids));
        }
        auto executor = exchange->executor();
        job.on_done = [this, exchange, executor, route, tokens,
                       base64 = r.base64](std::vector<std::vector<float>> vectors) {
            auto shared = std::make_shared<std::vector<std::vector<float>>>(std::move(vectors));
            net::post(executor, [this, exchange, route, tokens, base64, shared] {
                Json data = Json::array();
                for (size_t i = 0; i < shared->size(); ++i) {
                    const std::vector<float>& v = (*shared)[i];
                    data.push_back({{"object", "embedding"},
                                    {"index", i},
                                    {"embedding", base64 ? Json(base64_of_floats(v)) : Json(v)}});
                }
                const Json body = {{"object", "list"},
                                   {"data", std::move(data)},
                                   {"model", options_.model_name},
                                   {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
                metrics_.tokens(tokens, 0);
                metrics_.request_done(route, 200);
                exchange->note("prompt_tokens=" + std::to_string(tokens));
                exchange->respond(http::status::ok, "application/json", body.dump());
            });
        };
        job.on_error = [this, exchange, executor, route](const std::string& message) {
            net::post(executor, [this, exchange, route, message] {
                error(exchange, route, http::status::internal_server_error, message, "internal_error");
            });
        };
        embedder_->submit(std::move(job));
    });
}

}  // namespace tfx::serve
