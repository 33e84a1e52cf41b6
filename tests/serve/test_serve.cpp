// `tfx serve` on loopback: the real Beast server in this process on an ephemeral port, the
// real tinystories-656k model, real libcurl clients and raw sockets. Greedy output through the
// server must equal generate() alone, also while 8 and 32 requests run at once.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "apps/tfx/serve/engine.h"
#include "apps/tfx/serve/http_server.h"
#include "apps/tfx/serve/openai_server.h"
#include "core/generation.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"
#include "unit/test_data.h"

namespace {

using nlohmann::json;
namespace serve = tfx::serve;

// The server stack of `tfx serve`, running on its own I/O thread.
struct Server {
    Server(const std::filesystem::path& model, serve::EngineOptions engine_options = {},
           serve::ServerOptions server_options = {}, uint64_t max_body = 1u << 20, tfx::LoadOptions load = {})
        : session(tfx::AutoModel::from_pretrained(model.string(), load)),
          tokenizer(tfx::Tokenizer::for_model(*session, {})),
          engine(*session, engine_options),
          api(*session, *tokenizer, &engine, nullptr, with_name(server_options)),
          http(io, serve::HttpServerOptions{"127.0.0.1", 0, max_body},
               [this](const serve::HttpRequest& r, const std::shared_ptr<serve::Exchange>& e) { api.handle(r, e); }) {
        thread = std::thread([this] { io.run(); });
    }
    ~Server() {
        io.stop();
        thread.join();
    }
    static serve::ServerOptions with_name(serve::ServerOptions o) {
        if (o.model_name.empty()) o.model_name = "tiny";
        return o;
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(http.port()) + path; }

    std::unique_ptr<tfx::ModelSession> session;
    std::unique_ptr<tfx::Tokenizer> tokenizer;
    serve::Engine engine;
    serve::OpenAiServer api;
    serve::net::io_context io{1};
    serve::HttpServer http;
    std::thread thread;
};

struct Reply {
    long status = 0;
    std::string body;
    std::string headers;
};

size_t append(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

// One HTTP request through libcurl; `method` "POST" sends `body` as JSON.
Reply request(const std::string& url, const std::string& method = "GET", const std::string& body = {},
              const std::vector<std::string>& headers = {}) {
    Reply reply;
    CURL* curl = curl_easy_init();
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    const CURLcode rc = curl_easy_perform(curl);
    EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc) << " for " << url;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return reply;
}

Reply post(const Server& s, const std::string& path, const json& body, const std::vector<std::string>& headers = {}) {
    return request(s.url(path), "POST", body.dump(), headers);
}

// The "data: " payloads of a Server-Sent Events body.
std::vector<std::string> events_of(const std::string& body) {
    std::vector<std::string> events;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        const size_t end = body.find("\n\n", at);
        events.push_back(body.substr(at + 6, end - at - 6));
        at = end;
    }
    return events;
}

// What generate() gives for the prompt alone, greedy, as the server's text.
struct Expected {
    std::string text;
    size_t tokens;
    std::string finish_reason;
};
Expected alone(Server& s, const std::vector<int32_t>& prompt, int64_t max_new,
               int32_t adapter = tfx::lora::kActiveAdapters) {
    tfx::GenerationConfig greedy =
        tfx::GenerationConfig::from_model(s.session->config(), std::nullopt);  // eos from config.json
    greedy.do_sample = false;
    greedy.max_new_tokens = max_new;
    tfx::Generator g(*s.session);
    tfx::GenerationRequestOptions request;
    request.adapter = adapter;
    g.add(prompt, greedy, max_new, request);
    std::vector<int32_t> tokens;
    bool eos = false;
    while (!g.idle()) {
        for (const auto& e : g.step()) {
            tokens.push_back(e.token);
            eos = e.eos;
        }
    }
    return {s.tokenizer->decode(tokens, true), tokens.size(), eos ? "stop" : "length"};
}

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog", "Lily and Ben went to the park",
                                           "One day, a big red ball", "Tom was sad because"};

// Requests at once, prompts and lengths varied, each checked against generate() alone.
void check_concurrent(Server& s, int count) {
    struct Case {
        std::string prompt;
        int64_t max_tokens;
        Expected expected;
    };
    std::vector<Case> cases;
    for (int i = 0; i < count; ++i) {
        const std::string prompt = kPrompts[static_cast<size_t>(i) % kPrompts.size()];
        const int64_t max_tokens = 4 + (i * 7) % 29;
        cases.push_back({prompt, max_tokens, alone(s, s.tokenizer->encode(prompt, true), max_tokens)});
    }
    std::vector<std::future<Reply>> replies;
    for (const Case& c : cases) {
        replies.push_back(std::async(std::launch::async, [&s, c] {
            return post(s, "/v1/completions",
                        {{"model", "tiny"}, {"prompt", c.prompt}, {"max_tokens", c.max_tokens}, {"temperature", 0}});
        }));
    }
    for (size_t i = 0; i < cases.size(); ++i) {
        const Reply r = replies[i].get();
        ASSERT_EQ(r.status, 200) << r.body;
        const json j = json::parse(r.body);
        EXPECT_EQ(j["choices"][0]["text"], cases[i].expected.text) << "request " << i << " of " << count;
        EXPECT_EQ(j["usage"]["completion_tokens"], cases[i].expected.tokens) << "request " << i;
        EXPECT_EQ(j["choices"][0]["finish_reason"], cases[i].expected.finish_reason) << "request " << i;
    }
}

#define TINY_SERVER(var, ...)                                    \
    TFX_TEST_DATA_OR_SKIP(model_dir, "models/tinystories-656k"); \
    Server var(model_dir __VA_OPT__(, ) __VA_ARGS__)

TEST(Serve, GreedyCompletionsEqualGenerateAlone) {
    TINY_SERVER(s);
    check_concurrent(s, 1);
}

TEST(Serve, BatchingDoesNotChangeGreedyOutputAt8And32Concurrent) {
    // A small step budget makes long prompts prefill in chunks while others decode.
    TINY_SERVER(s, serve::EngineOptions{.max_batch = 32, .max_step_tokens = 8});
    check_concurrent(s, 8);
    check_concurrent(s, 32);
}

// An encoder-decoder model serves completions as generate() gives them: the prompt is the
// encoder's input, the text the decoder's tokens, and 8 requests at once (their encoder outputs
// and cross-attention caches batched) answer as each alone. tiny/t5's config sized to the
// shared T5-style unigram tokenizer, with random weights (tfx init-model).
TEST(Serve, EncoderDecoderCompletionsEqualGenerateAlone) {
    TFX_TEST_DATA_OR_SKIP(t5_dir, "tiny/t5");
    TFX_TEST_DATA_OR_SKIP(tokenizer_dir, "tokenizers/t5-style-unigram");
    namespace fs = std::filesystem;
    const fs::path scratch = fs::temp_directory_path() / ("tfx-serve-t5-" + std::to_string(getpid()));
    const fs::path dir = scratch / "model";
    fs::remove_all(scratch);
    fs::create_directories(scratch);
    json config = json::parse(std::ifstream(t5_dir / "config.json"));
    const json tokenizer = json::parse(std::ifstream(tokenizer_dir / "tokenizer.json"));
    size_t vocab = tokenizer["model"]["vocab"].size();
    for (const json& added : tokenizer["added_tokens"]) vocab = std::max(vocab, added["id"].get<size_t>() + 1);
    config["vocab_size"] = vocab;
    std::ofstream(scratch / "config.json") << config.dump();
    const std::string init = std::string(TFX_BIN) + " init-model --config " + (scratch / "config.json").string() +
                             " --out " + dir.string() + " --seed 3 > /dev/null";
    ASSERT_EQ(std::system(init.c_str()), 0) << init;
    for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(tokenizer_dir / name, dir / name, fs::copy_options::overwrite_existing);
    fs::copy_file(t5_dir / "generation_config.json", dir / "generation_config.json",
                  fs::copy_options::overwrite_existing);
    {
        Server s(dir, serve::EngineOptions{.max_batch = 8, .max_step_tokens = 8});
        check_concurrent(s, 1);
        check_concurrent(s, 8);
    }
    fs::remove_all(scratch);
}

TEST(Serve, StreamedPiecesMakeTheWholeText) {
    TINY_SERVER(s);
    const json body = {{"model", "tiny"},  {"prompt", "Once upon a time"},
                       {"max_tokens", 24}, {"temperature", 0},
                       {"stream", true},   {"stream_options", {{"include_usage", true}}}};
    const Reply whole = post(s, "/v1/completions", [&] {
        json b = body;
        b.erase("stream");
        b.erase("stream_options");
        return b;
    }());
    const Reply streamed = post(s, "/v1/completions", body);
    ASSERT_EQ(streamed.status, 200);
    EXPECT_NE(streamed.headers.find("text/event-stream"), std::string::npos);
    const auto events = events_of(streamed.body);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text;
    for (size_t i = 0; i + 2 < events.size(); ++i)
        text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, json::parse(whole.body)["choices"][0]["text"]);
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["completion_tokens"], 24);
    EXPECT_EQ(json::parse(events[events.size() - 3])["choices"][0]["finish_reason"], "length");
}

TEST(Serve, StopStringsCutTheTextAndFinishWithStop) {
    TINY_SERVER(s);
    const json base = {{"model", "tiny"}, {"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}};
    const std::string full = json::parse(post(s, "/v1/completions", base).body)["choices"][0]["text"];
    const size_t cut = full.find("Lily");
    ASSERT_NE(cut, std::string::npos) << full;
    json stopped = base;
    stopped["stop"] = {"Lily"};
    const json j = json::parse(post(s, "/v1/completions", stopped).body);
    EXPECT_EQ(j["choices"][0]["text"], full.substr(0, cut));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    // Streamed, the held-back text never leaks past the stop string either.
    stopped["stream"] = true;
    std::string text;
    for (const auto& e : events_of(post(s, "/v1/completions", stopped).body)) {
        if (e != "[DONE]") text += json::parse(e)["choices"][0]["text"].get<std::string>();
    }
    EXPECT_EQ(text, full.substr(0, cut));
}

TEST(Serve, LogprobsAreTheModelsLogSoftmax) {
    TINY_SERVER(s);
    const Reply r = post(
        s, "/v1/completions",
        {{"model", "tiny"}, {"prompt", "Once upon a time"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 3}});
    const json lp = json::parse(r.body)["choices"][0]["logprobs"];
    ASSERT_EQ(lp["token_logprobs"].size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
        const json& top = lp["top_logprobs"][i];
        ASSERT_EQ(top.size(), 3u);
        float best = -1e30f;
        for (const auto& [token, value] : top.items()) best = std::max(best, value.get<float>());
        // Greedy picks the most likely token: its log-probability is the best of the top ones.
        EXPECT_FLOAT_EQ(lp["token_logprobs"][i].get<float>(), best);
        EXPECT_LT(best, 0.0f);
    }
}

TEST(Serve, SeededSamplingRepeatsAndNGivesSeveralChoices) {
    TINY_SERVER(s);
    const json body = {
        {"model", "tiny"}, {"prompt", "The little dog"}, {"max_tokens", 12}, {"temperature", 1.0}, {"seed", 7},
        {"n", 3},          {"ignore_eos", true}};
    const json a = json::parse(post(s, "/v1/completions", body).body),
               b = json::parse(post(s, "/v1/completions", body).body);
    ASSERT_EQ(a["choices"].size(), 3u);
    EXPECT_EQ(a["choices"], b["choices"]);
    EXPECT_EQ(a["usage"]["completion_tokens"], 36);
    // The n choices share one prefill and fork; each is what one choice with its seed gives.
    for (int i = 0; i < 3; ++i) {
        json single = body;
        single["n"] = 1;
        single["seed"] = 7 + i;
        const json one = json::parse(post(s, "/v1/completions", single).body);
        EXPECT_EQ(one["choices"][0]["text"], a["choices"][i]["text"]) << "choice " << i;
    }
}

TEST(Serve, ChatRunsThroughTheChatTemplate) {
    TFX_TEST_DATA_OR_SKIP(model_dir, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(template_dir, "chat_templates/qwen2_5");
    // tinystories-656k saved with Qwen2.5's chat template (its byte-fallback vocabulary spells the markers).
    const auto dir = std::filesystem::temp_directory_path() / ("tfx-serve-chat-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    for (const auto& f : std::filesystem::directory_iterator(model_dir))
        std::filesystem::copy_file(f.path(), dir / f.path().filename(),
                                   std::filesystem::copy_options::overwrite_existing);
    json config = json::parse(std::ifstream(dir / "tokenizer_config.json"));
    config["chat_template"] = json::parse(std::ifstream(template_dir / "tokenizer_config.json"))["chat_template"];
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
    {
        Server s(dir);
        const json messages = json::array({{{"role", "user"}, {"content", "Tell me a story"}}});
        const Expected expected = alone(s, s.tokenizer->encode_chat(messages, {}), 16);
        const Reply r = post(s, "/v1/chat/completions",
                             {{"model", "tiny"}, {"messages", messages}, {"max_tokens", 16}, {"temperature", 0}});
        ASSERT_EQ(r.status, 200) << r.body;
        const json j = json::parse(r.body);
        EXPECT_EQ(j["object"], "chat.completion");
        EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
        EXPECT_EQ(j["choices"][0]["message"]["content"], expected.text);
        EXPECT_EQ(j["usage"]["prompt_tokens"], s.tokenizer->encode_chat(messages, {}).size());
        // Streamed: a role delta first, then content, then the finish.
        const Reply st =
            post(s, "/v1/chat/completions",
                 {{"model", "tiny"}, {"messages", messages}, {"max_tokens", 16}, {"temperature", 0}, {"stream", true}});
        const auto events = events_of(st.body);
        ASSERT_GE(events.size(), 3u);
        EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
        std::string text;
        for (size_t i = 0; i + 1 < events.size(); ++i) {
            const json delta = json::parse(events[i])["choices"][0]["delta"];
            if (delta.contains("content")) text += delta["content"].get<std::string>();
        }
        EXPECT_EQ(text, expected.text);
        EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], expected.finish_reason);

        // With tools, a reply that holds no call streams as it comes (not held to the end), and
        // adds up to the whole answer's content.
        const json tools = json::array(
            {{{"type", "function"},
              {"function",
               {{"name", "get_weather"}, {"parameters", {{"type", "object"}, {"properties", json::object()}}}}}}});
        const json with_tools = {
            {"model", "tiny"}, {"messages", messages}, {"max_tokens", 16}, {"temperature", 0}, {"tools", tools}};
        const json whole = json::parse(post(s, "/v1/chat/completions", with_tools).body);
        json streamed_request = with_tools;
        streamed_request["stream"] = true;
        std::string streamed;
        int content_chunks = 0;
        for (const std::string& event : events_of(post(s, "/v1/chat/completions", streamed_request).body)) {
            if (event == "[DONE]") continue;
            const json delta = json::parse(event)["choices"][0]["delta"];
            EXPECT_FALSE(delta.contains("tool_calls")) << event;
            if (delta.contains("content") && !delta["content"].get<std::string>().empty()) {
                streamed += delta["content"].get<std::string>();
                ++content_chunks;
            }
        }
        EXPECT_EQ(streamed, whole["choices"][0]["message"]["content"]);
        EXPECT_GT(content_chunks, 3) << "the content was held back";
    }
    std::filesystem::remove_all(dir);
}

TEST(Serve, BadRequestsGetOpenAiErrors) {
    TINY_SERVER(s, serve::EngineOptions{}, serve::ServerOptions{.api_key = "sekret"}, 4096);
    const std::vector<std::string> key = {"Authorization: Bearer sekret"};
    const json ok = {{"model", "tiny"}, {"prompt", "Once"}, {"max_tokens", 2}};
    EXPECT_EQ(post(s, "/v1/completions", ok, key).status, 200);
    EXPECT_EQ(post(s, "/v1/completions", ok).status, 401);
    EXPECT_EQ(post(s, "/v1/completions", ok, {"Authorization: Bearer wrong"}).status, 401);
    EXPECT_EQ(request(s.url("/health")).status, 200);  // no key needed outside /v1/

    const Reply malformed = request(s.url("/v1/completions"), "POST", "{\"model\": ", key);
    EXPECT_EQ(malformed.status, 400);
    EXPECT_TRUE(json::parse(malformed.body)["error"]["message"].get<std::string>().find("JSON") != std::string::npos);
    json bad = ok;
    bad["max_tokens"] = -3;
    const Reply field = post(s, "/v1/completions", bad, key);
    EXPECT_EQ(field.status, 400);
    EXPECT_EQ(json::parse(field.body)["error"]["param"], "max_tokens");
    bad = ok;
    bad["max_tokens"] = 100000;  // past the context
    EXPECT_EQ(post(s, "/v1/completions", bad, key).status, 400);
    bad = ok;
    bad["prompt"] = json::array({5000000});
    EXPECT_EQ(post(s, "/v1/completions", bad, key).status, 400);
    bad = ok;
    bad["model"] = "other";
    EXPECT_EQ(post(s, "/v1/completions", bad, key).status, 404);
    EXPECT_EQ(request(s.url("/v1/nowhere"), "GET", "", key).status, 404);
    EXPECT_EQ(request(s.url("/v1/completions"), "GET", "", key).status, 405);
    EXPECT_EQ(request(s.url("/v1/completions"), "POST", std::string(5000, ' '), key).status, 413);
    // The server is still up and answering.
    EXPECT_EQ(post(s, "/v1/completions", ok, key).status, 200);
}

TEST(Serve, AFullQueueAnswers429WithRetryAfter) {
    TINY_SERVER(s, serve::EngineOptions{.max_queue = 0});
    const Reply r = post(s, "/v1/completions", {{"model", "tiny"}, {"prompt", "Once"}, {"max_tokens", 2}});
    EXPECT_EQ(r.status, 429);
    EXPECT_NE(r.headers.find("Retry-After: 1"), std::string::npos) << r.headers;
}

// A raw client that asks for a long stream, reads its first bytes and hangs up.
void disconnect_mid_stream(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    const std::string body =
        R"({"model": "tiny", "prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": true, "stream": true})";
    const std::string request =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    char buffer[512];
    ASSERT_GT(recv(fd, buffer, sizeof buffer, 0), 0);
    close(fd);
}

TEST(Serve, AClientThatDisconnectsMidStreamFreesItsSequence) {
    TINY_SERVER(s);
    disconnect_mid_stream(s.http.port());
    // Its sequence leaves the batch and its blocks are freed long before 480 tokens are made.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    serve::Engine::Stats stats;
    do {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        stats = s.engine.stats();
    } while ((stats.running > 0 || stats.kv_blocks_in_use > 0) && std::chrono::steady_clock::now() < deadline);
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
    const json metrics_check = {{"model", "tiny"}, {"prompt", "Once"}, {"max_tokens", 2}};
    EXPECT_EQ(post(s, "/v1/completions", metrics_check).status, 200);
    EXPECT_NE(request(s.url("/metrics")).body.find("status=\"499\""), std::string::npos);
}

TEST(Serve, HealthModelsAndMetrics) {
    TINY_SERVER(s);
    EXPECT_EQ(request(s.url("/health")).body, R"({"status":"ok"})");
    const json models = json::parse(request(s.url("/v1/models")).body);
    EXPECT_EQ(models["data"][0]["id"], "tiny");
    EXPECT_EQ(models["data"][0]["max_model_len"], 512);
    post(s, "/v1/completions", {{"model", "tiny"}, {"prompt", "Once"}, {"max_tokens", 3}, {"ignore_eos", true}});
    const std::string metrics = request(s.url("/metrics")).body;
    for (const char* line :
         {"tfx_requests_total{route=\"/v1/completions\",status=\"200\"} 1",
          "tfx_generation_tokens_total 3",  // the health check is not a request's token
          "tfx_time_to_first_token_seconds_count 1", "tfx_queue_depth 0", "tfx_kv_blocks_in_use 0"}) {
        EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
    }
}

TEST(Serve, ATightKvBudgetPreemptsAndStillAnswersAsAlone) {
    TFX_TEST_DATA_OR_SKIP(model_dir, "models/tinystories-656k");
    // 10 blocks of 16 positions: 16 requests of up to 5 + 32 positions outgrow it as they
    // generate, so the newest are preempted and recomputed.
    const int64_t block_bytes = tfx::AutoModel::from_pretrained(model_dir.string(), {})->make_cache(16)->block_bytes();
    Server s(model_dir,
             serve::EngineOptions{.max_batch = 32, .max_step_tokens = 8, .kv_cache_bytes = 10 * block_bytes});
    // Whether requests overlap enough to preempt depends on when they arrive: a loaded machine
    // can serve the first before the last come in (1 run in 30 under load saw none). Rounds
    // of 16 until one preempts; every round's answers are checked.
    for (int round = 0; round < 5 && s.engine.stats().preemptions == 0; ++round) check_concurrent(s, 16);
    const serve::Engine::Stats stats = s.engine.stats();
    EXPECT_GT(stats.preemptions, 0);
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
    EXPECT_LE(stats.kv_blocks_allocated, 10 + 5) << "the pools grow by half at most past the budget they never exceed";
    EXPECT_NE(request(s.url("/metrics")).body.find("tfx_preemptions_total " + std::to_string(stats.preemptions)),
              std::string::npos);
}

// The prefix-cache counter of GET /metrics.
int64_t prefix_hits(const Server& s) {
    const std::string metrics = request(s.url("/metrics")).body;
    const std::string name = "\ntfx_prefix_cache_hits_total ";
    const size_t at = metrics.find(name);
    EXPECT_NE(at, std::string::npos) << metrics;
    return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + name.size()));
}

TEST(Serve, PromptsThatBeginAlikeShareCachedBlocksAndAnswerTheSame) {
    const std::string story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her "
        "dog Max. One day, Lily and Max went to the park to play with a big red ball. The ball rolled away and "
        "Max ran after it. Lily laughed and ran too. They played until the sun went down, then they went home "
        "to eat dinner with mom and dad.";
    for (const bool prefix_caching : {true, false}) {
        TINY_SERVER(s, serve::EngineOptions{.prefix_caching = prefix_caching});
        int64_t hits_before = prefix_hits(s);
        for (const std::string ending : {" Then", " Later that day,", " Then"}) {
            const std::string prompt = story + ending;
            const Expected expected = alone(s, s.tokenizer->encode(prompt, true), 12);
            const Reply r = post(s, "/v1/completions",
                                 {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}});
            ASSERT_EQ(r.status, 200) << r.body;
            EXPECT_EQ(json::parse(r.body)["choices"][0]["text"], expected.text) << ending;
        }
        const int64_t story_blocks = static_cast<int64_t>(s.tokenizer->encode(story, true).size()) / 16;
        ASSERT_GE(story_blocks, 2);
        if (prefix_caching) {
            // The second and third prompts found at least the story's full blocks.
            EXPECT_GE(prefix_hits(s) - hits_before, 2 * story_blocks * 16);
        } else {
            EXPECT_EQ(prefix_hits(s), 0) << "--no-prefix-cache computes every prompt";
        }
    }
}

// LoRA adapters chosen by name in `model` (vLLM's --lora-modules): requests for three adapters
// and the bare base run in one batch, each answering what it answers alone; the base's cached
// prompt blocks never serve an adapter's request; /v1/models lists the adapters.
TEST(Serve, LoraAdaptersChosenByModelNameShareOneBatch) {
    TFX_TEST_DATA_OR_SKIP(adapters, "lora/tinystories-656k/adapters");
    TFX_TEST_DATA_OR_SKIP(model_dir, "models/tinystories-656k");
    tfx::LoadOptions load;
    load.lora = {{adapters / "a1", "a1", 1.0f}, {adapters / "a2", "a2", 1.0f}, {adapters / "a1", "a1-half", 0.5f}};
    Server s(model_dir, {.block_size = 4}, {}, 1u << 20, load);
    s.session->set_active_lora({});  // the model's own name: the bare base
    const std::vector<std::string> names{"tiny", "a1", "a2", "a1-half"};
    const std::string prompt = "Once upon a time, there was a little girl";
    constexpr int64_t kTokens = 20;
    std::vector<Expected> expected;
    for (size_t i = 0; i < names.size(); ++i) {
        expected.push_back(alone(s, s.tokenizer->encode(prompt, true), kTokens,
                                 i == 0 ? tfx::lora::kNoAdapter : static_cast<int32_t>(i - 1)));
    }
    for (size_t i = 1; i < 3; ++i) EXPECT_NE(expected[i].text, expected[0].text) << names[i];
    const auto ask = [&](const std::string& model) {
        return post(
            s, "/v1/completions",
            {{"model", model}, {"prompt", prompt}, {"max_tokens", kTokens}, {"temperature", 0}, {"ignore_eos", true}});
    };
    // The base first, so its prompt blocks are cached before the adapters' requests arrive.
    ASSERT_EQ(ask("tiny").status, 200);
    std::vector<std::future<Reply>> replies;
    for (int round = 0; round < 2; ++round) {
        for (const std::string& name : names) replies.push_back(std::async(std::launch::async, ask, name));
    }
    for (size_t i = 0; i < replies.size(); ++i) {
        const Reply r = replies[i].get();
        ASSERT_EQ(r.status, 200) << r.body;
        const json j = json::parse(r.body);
        EXPECT_EQ(j["model"], names[i % names.size()]);
        EXPECT_EQ(j["choices"][0]["text"], expected[i % names.size()].text) << names[i % names.size()];
    }
    const json models = json::parse(request(s.url("/v1/models")).body);
    ASSERT_EQ(models["data"].size(), 4u) << models.dump();
    EXPECT_EQ(models["data"][1]["id"], "a1");
    EXPECT_EQ(models["data"][1]["parent"], "tiny");
    EXPECT_EQ(models["data"][3]["id"], "a1-half");
    const Reply unknown = ask("a3");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_NE(unknown.body.find("'a2'"), std::string::npos) << unknown.body;
}

}  // namespace
