// The HTTP side of `tfx serve`: a Boost.Beast server on one Asio I/O thread. It reads requests
// (HTTP/1.1, keep-alive, a body limit), hands each to the handler as an Exchange, and writes
// the answer: a whole response, or Server-Sent Events as chunked transfer encoding. Answers
// are queued, never blocking the caller, so a slow reader holds back only its own stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

namespace tfx::serve {

namespace net = boost::asio;
namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request's answer. Every method must be called on the server's I/O thread (post to
// executor() from other threads); calls after the answer is complete, or after the client
// went away, do nothing.
class Exchange {
  public:
    virtual ~Exchange() = default;
    // A whole response.
    virtual void respond(http::status status, std::string_view content_type, std::string body,
                         const HttpHeaders& headers = {}) = 0;
    // Starts a 200 text/event-stream response; send_event() writes "data: PAYLOAD\n\n".
    virtual void start_events() = 0;
    virtual void send_event(std::string_view payload) = 0;
    virtual void end_events() = 0;
    // Called once, on the I/O thread, when the client disconnects before the answer is complete.
    virtual void on_disconnect(std::function<void()> callback) = 0;
    virtual bool finished() const = 0;
    // Appended to the request's log line ("prompt_tokens=5 completion_tokens=16").
    virtual void note(std::string text) = 0;
    virtual net::any_io_executor executor() = 0;
};

using Handler = std::function<void(const HttpRequest&, const std::shared_ptr<Exchange>&)>;

struct HttpServerOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 8000;  // 0: an ephemeral port (port() tells which)
    uint64_t max_body_bytes = 8u << 20;
    // A connection that sends nothing for this long (between or inside requests) is closed.
    std::chrono::seconds read_timeout{60};
    // A client that reads nothing of its answer for this long is treated as gone.
    std::chrono::seconds write_timeout{300};
};

class HttpServer {
  public:
    // Binds and listens at once (throws naming host:port when it cannot); accepts on `io`.
    HttpServer(net::io_context& io, HttpServerOptions options, Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    uint16_t port() const;
    // Stops accepting connections (draining: requests in progress go on).
    void stop_accepting();
    // Requests read and not yet completely answered.
    int64_t requests_in_progress() const;
    // Closes every connection (requests in progress are abandoned).
    void close_all();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace tfx::serve
