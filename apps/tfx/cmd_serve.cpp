// `tfx serve`: an OpenAI-compatible HTTP server over one model (apps/tfx/serve/). The engine
// thread batches every request's sequences (the embedder's, for a base encoder model); one
// I/O thread runs HTTP. SIGINT / SIGTERM stop
// accepting, let requests in progress finish, then exit; a second signal exits at once.
#include <cstdlib>
#include <iostream>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "apps/tfx/commands.h"
#include "apps/tfx/serve/embedder.h"
#include "apps/tfx/serve/engine.h"
#include "apps/tfx/serve/http_server.h"
#include "apps/tfx/serve/openai_server.h"
#include "core/log.h"
#include "registry/pipelines.h"

namespace tfx::cli {
namespace {

struct ServeOptions {
    ModelOptions model;
    std::string host = "127.0.0.1";
    int port = 8000;
    std::string api_key;
    std::string served_model_name;
    int64_t max_batch = 32;
    int64_t max_queue = 256;
    int64_t ctx = 0;
    int64_t step_tokens = 256;
    int64_t kv_cache_mib = 2048;
    int64_t max_body_mib = 8;
    bool no_prefix_cache = false;
    std::vector<std::string> lora_modules;  // NAME=DIR each
};

// Polls until no request is in progress, then stops the I/O loop.
void stop_when_idle(std::shared_ptr<serve::net::steady_timer> timer, serve::HttpServer& http,
                    serve::net::io_context& io) {
    if (http.requests_in_progress() == 0) return io.stop();
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([timer, &http, &io](const boost::system::error_code& ec) {
        if (!ec) stop_when_idle(timer, http, io);
    });
}

void run_serve(ServeOptions o) {
    // One log line per request unless the user chose a level.
    if (!std::getenv("TFX_LOG_LEVEL")) log::set_threshold(log::Level::info);
    if (o.api_key.empty()) {
        if (const char* key = std::getenv("TFX_API_KEY"); key && *key) o.api_key = key;
    }
    LoadOptions load = o.model.session_options();
    // --lora adapters apply to requests naming the model; --lora-modules ones to requests naming them.
    std::vector<std::string> active;
    for (const lora::AdapterSpec& spec : load.lora) active.push_back(lora::load_name(spec));
    for (const std::string& module : o.lora_modules) {
        const size_t eq = module.find('=');
        if (eq == 0 || eq == std::string::npos || eq + 1 == module.size()) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--lora-modules " + module + ": expected NAME=DIR");
        }
        if (load.merge_lora) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "--lora-modules: adapters chosen per request cannot be merged "
                             "(--merge-lora merges --lora adapters only)");
        }
        load.lora.push_back({module.substr(eq + 1), module.substr(0, eq), 1.0f});
    }
    auto session = AutoModel::from_pretrained(o.model.model, load);
    if (!load.merge_lora) session->set_active_lora(active);
    if (!Tokenizer::model_has_one(*session))
        throw sdk::Error(TFX_ERR_NOT_FOUND, o.model.model +
                                                ": no tokenizer.json (or GGUF tokenizer metadata); "
                                                "the server takes text");
    const auto tokenizer = Tokenizer::for_model(*session, global_options().plugin_paths);
    // A language model generates (the Engine); a base encoder model embeds (the Embedder).
    std::unique_ptr<serve::Engine> engine;
    std::unique_ptr<serve::Embedder> embedder;
    if (session->info().output_kind == TFX_OUTPUT_HIDDEN_STATE) {
        serve::EmbedderOptions embedder_options;
        embedder_options.max_queue = o.max_queue;
        embedder_options.max_step_tokens = o.step_tokens;
        embedder_options.pooling = sentence_transformers_pooling(session->model_dir()).value_or(Pooling::mean);
        embedder = std::make_unique<serve::Embedder>(*session, embedder_options);
    } else {
        serve::EngineOptions engine_options;
        engine_options.max_batch = o.max_batch;
        engine_options.max_queue = o.max_queue;
        engine_options.max_step_tokens = o.step_tokens;
        engine_options.kv_cache_bytes = o.kv_cache_mib << 20;
        engine_options.prefix_caching = !o.no_prefix_cache;
        engine = std::make_unique<serve::Engine>(*session, engine_options);
    }
    serve::ServerOptions server_options;
    server_options.model_name = o.served_model_name.empty() ? o.model.model : o.served_model_name;
    server_options.api_key = o.api_key;
    server_options.context_length = o.ctx;
    serve::OpenAiServer api(*session, *tokenizer, engine.get(), embedder.get(), server_options);

    serve::net::io_context io(1);
    serve::HttpServerOptions http_options;
    http_options.host = o.host;
    http_options.port = static_cast<uint16_t>(o.port);
    http_options.max_body_bytes = static_cast<uint64_t>(o.max_body_mib) << 20;
    serve::HttpServer http(io, http_options,
                           [&api](const serve::HttpRequest& request, const std::shared_ptr<serve::Exchange>& exchange) {
                               api.handle(request, exchange);
                           });
    serve::net::signal_set signals(io, SIGINT, SIGTERM);
    auto timer = std::make_shared<serve::net::steady_timer>(io);
    bool draining = false;
    std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                               int signal) {
        if (ec) return;
        if (draining) {
            log::info("serve: second signal, exiting now");
            return io.stop();
        }
        draining = true;
        log::info(std::string("serve: ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") + ", finishing " +
                  std::to_string(http.requests_in_progress()) + " request(s) in progress, then exiting");
        http.stop_accepting();
        api.start_draining();
        stop_when_idle(timer, http, io);
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    std::cerr << "tfx serve: " << session->plugin_summary() << "; model '" << server_options.model_name
              << "'; listening on http://" << o.host << ':' << http.port() << std::endl;
    io.run();
    http.close_all();
}

}  // namespace

void add_serve_command(CLI::App& app) {
    auto o = std::make_shared<ServeOptions>();
    auto* cmd = app.add_subcommand("serve", "Serve the model over HTTP with OpenAI's API (continuous batching)");
    o->model.add_to(cmd);
    cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
    cmd->add_option("--port", o->port, "Port to listen on (0: any free port, printed at start)")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    cmd->add_option("--api-key", o->api_key,
                    "Require 'Authorization: Bearer KEY' on /v1/ routes (default: $TFX_API_KEY, else none)");
    cmd->add_option("--lora-modules", o->lora_modules,
                    "LoRA adapters requests choose by name in `model`, NAME=DIR (a PEFT folder); repeatable. "
                    "Requests naming the model itself get the --lora adapters, if any");
    cmd->add_option("--served-model-name", o->served_model_name,
                    "The model's name in the API (default: --model as given)");
    cmd->add_option("--max-batch", o->max_batch, "Sequences in the running batch at most")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--max-queue", o->max_queue, "Sequences waiting at most; more get HTTP 429")
        ->check(integer_at_least(0))
        ->capture_default_str();
    cmd->add_option("--ctx", o->ctx, "Context length: prompt + new tokens (default: the model's maximum)")
        ->check(integer_at_least(1));
    cmd->add_option("--step-tokens", o->step_tokens,
                    "Tokens one batch step feeds at most; longer prompts prefill in chunks (0: no limit)")
        ->check(integer_at_least(0))
        ->capture_default_str();
    cmd->add_option("--kv-cache-mib", o->kv_cache_mib,
                    "KV cache the running sequences may hold, MiB (0: no limit); new sequences wait for room, and the "
                    "newest running one is preempted and recomputed when it runs out")
        ->check(integer_at_least(0))
        ->capture_default_str();
    cmd->add_flag("--no-prefix-cache", o->no_prefix_cache,
                  "Compute every prompt in full instead of sharing the KV blocks of prompts that begin alike");
    cmd->add_option("--max-body-mib", o->max_body_mib, "Largest request body, MiB; larger ones get HTTP 413")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->callback([o] { run_serve(*o); });
}

}  // namespace tfx::cli
