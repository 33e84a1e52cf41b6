#include "apps/tfx/serve/http_server.h"

#include <sys/socket.h>

#include <deque>
#include <optional>
#include <set>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "apps/tfx/serve/error_body.h"
#include "core/log.h"
#include "tfx/sdk/error.hpp"

namespace tfx::serve {

namespace beast = boost::beast;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

class Connection;

struct HttpServer::State {
    net::io_context& io;
    HttpServerOptions options;
    Handler handler;
    tcp::acceptor acceptor;
    std::set<std::weak_ptr<Connection>, std::owner_less<>> connections;
    int64_t in_progress = 0;
    State(net::io_context& context, HttpServerOptions o, Handler h)
        : io(context), options(std::move(o)), handler(std::move(h)), acceptor(context) {}
};

// A client connection: reads requests one after another; each gets a RequestExchange that
// lives until its answer is written.
class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(tcp::socket socket, const std::shared_ptr<HttpServer::State>& server)
        : stream_(std::move(socket)), server_(server) {}

    void start() { read_request(); }
    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.socket().close(ignored);
    }

  private:
    friend class RequestExchange;
    using Write = std::function<void(std::function<void(beast::error_code, size_t)>)>;

    void read_request();
    void on_read(beast::error_code ec);
    // Answers a request that could not be read (413, 400) and closes the connection.
    void refuse(http::status status, std::string_view message);
    void watch_for_disconnect();
    void queue(Write write, bool last);
    void write_next();
    void on_exchange_done();
    void client_gone();

    beast::tcp_stream stream_;
    std::weak_ptr<HttpServer::State> server_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<class RequestExchange> current_;
    std::deque<std::pair<Write, bool>> writes_;  // (write, the answer's last)
    bool writing_ = false;
    bool gone_ = false;
};

class RequestExchange : public Exchange {
  public:
    RequestExchange(std::shared_ptr<Connection> connection, std::string method, std::string target, bool keep_alive,
                    unsigned version)
        : connection_(std::move(connection)),
          method_(std::move(method)),
          target_(std::move(target)),
          keep_alive_(keep_alive),
          version_(version),
          start_(Clock::now()) {}

    void respond(http::status status, std::string_view content_type, std::string body,
                 const HttpHeaders& headers) override {
        if (answered_ || gone_) return;
        answered_ = true;
        status_ = static_cast<int>(status);
        auto response = std::make_shared<http::response<http::string_body>>(status, version_);
        response->set(http::field::server, "tfx");
        response->set(http::field::content_type, std::string(content_type));
        for (const auto& [name, value] : headers) response->set(name, value);
        response->keep_alive(keep_alive_);
        response->body() = std::move(body);
        response->prepare_payload();
        Connection& c = *connection_;
        c.queue([&c, response](auto done) { http::async_write(c.stream_, *response, std::move(done)); }, true);
    }
    void start_events() override {
        if (answered_ || gone_) return;
        answered_ = streaming_ = true;
        status_ = 200;
        auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, version_);
        head->set(http::field::server, "tfx");
        head->set(http::field::content_type, "text/event-stream");
        head->set(http::field::cache_control, "no-cache");
        head->keep_alive(keep_alive_);
        head->chunked(true);
        auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*head);
        Connection& c = *connection_;
        c.queue(
            [&c, head, serializer](auto done) { http::async_write_header(c.stream_, *serializer, std::move(done)); },
            false);
    }
    void send_event(std::string_view payload) override {
        if (!streaming_ || ended_ || gone_) return;
        auto chunk = std::make_shared<std::string>("data: ");
        chunk->append(payload).append("\n\n");
        Connection& c = *connection_;
        c.queue([&c, chunk](
                    auto done) { net::async_write(c.stream_, http::make_chunk(net::buffer(*chunk)), std::move(done)); },
                false);
    }
    void end_events() override {
        if (!streaming_ || ended_ || gone_) return;
        ended_ = true;
        Connection& c = *connection_;
        c.queue([&c](auto done) { net::async_write(c.stream_, http::make_chunk_last(), std::move(done)); }, true);
    }
    void on_disconnect(std::function<void()> callback) override { on_disconnect_ = std::move(callback); }
    bool finished() const override { return gone_ || complete_; }
    void note(std::string text) override {
        if (!notes_.empty()) notes_ += ' ';
        notes_ += text;
    }
    net::any_io_executor executor() override { return connection_->stream_.get_executor(); }

    // The connection's side.
    void client_gone() {
        if (gone_ || complete_) return;
        gone_ = true;
        if (status_ == 0) status_ = 499;  // nginx's "client closed request"
        note("client disconnected");
        if (auto callback = std::move(on_disconnect_)) callback();
        log_line();
    }
    void written() {
        complete_ = true;
        on_disconnect_ = nullptr;
        log_line();
    }
    bool keep_alive() const { return keep_alive_; }

  private:
    void log_line() {
        const auto ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
        char latency[32];
        std::snprintf(latency, sizeof latency, "%.1fms", ms);
        log::info("serve: " + method_ + " " + target_ + " " + std::to_string(status_) + " " + latency +
                  (notes_.empty() ? "" : " " + notes_));
    }

    std::shared_ptr<Connection> connection_;
    std::string method_, target_;
    bool keep_alive_;
    unsigned version_;
    Clock::time_point start_;
    std::string notes_;
    std::function<void()> on_disconnect_;
    int status_ = 0;
    bool answered_ = false, streaming_ = false, ended_ = false, complete_ = false, gone_ = false;
};

void Connection::read_request() {
    auto server = server_.lock();
    if (!server) return;
    parser_.emplace();
    parser_->body_limit(server->options.max_body_bytes);
    stream_.expires_after(server->options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
}

void Connection::on_read(beast::error_code ec) {
    auto server = server_.lock();
    if (!server) return;
    if (ec == http::error::body_limit) {
        return refuse(http::status::payload_too_large,
                      "request body exceeds the limit of " + std::to_string(server->options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
        return close();
    }
    if (ec) return refuse(http::status::bad_request, "malformed HTTP request: " + ec.message());
    stream_.expires_never();
    HttpRequest request = parser_->release();
    current_ =
        std::make_shared<RequestExchange>(shared_from_this(), std::string(request.method_string()),
                                          std::string(request.target()), request.keep_alive(), request.version());
    ++server->in_progress;
    watch_for_disconnect();
    const std::shared_ptr<Exchange> exchange = current_;
    try {
        server->handler(request, exchange);
    } catch (const std::exception& e) {
        exchange->respond(http::status::internal_server_error, "application/json",
                          openai_error_body(std::string("internal error: ") + e.what(), "internal_error"));
    }
}

void Connection::refuse(http::status status, std::string_view message) {
    auto response = std::make_shared<http::response<http::string_body>>(status, 11);
    response->set(http::field::server, "tfx");
    response->set(http::field::content_type, "application/json");
    response->keep_alive(false);
    response->body() = openai_error_body(message, "invalid_request_error");
    response->prepare_payload();
    log::info("serve: refused a request: " + std::to_string(static_cast<int>(status)) + " " + std::string(message));
    stream_.expires_after(std::chrono::seconds(5));
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code, size_t) { self->close(); });
}

// A client that closes its connection while its answer is being made: the socket turns
// readable and a peek reads end-of-file. Bytes instead (a pipelined request) end the watch;
// a write that fails later still tells.
void Connection::watch_for_disconnect() {
    stream_.socket().async_wait(
        tcp::socket::wait_read, [self = shared_from_this(), exchange = current_](beast::error_code ec) {
            if (ec || exchange != self->current_ || exchange->finished()) return;
            char byte;
            const ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                self->client_gone();
            } else if (n < 0) {
                self->watch_for_disconnect();  // a spurious wake-up
            }
        });
}

void Connection::queue(Write write, bool last) {
    writes_.emplace_back(std::move(write), last);
    if (!writing_) write_next();
}

void Connection::write_next() {
    if (writes_.empty() || gone_) {
        writing_ = false;
        return;
    }
    writing_ = true;
    auto server = server_.lock();
    if (server) stream_.expires_after(server->options.write_timeout);
    // The write owns what it sends (the response, the chunk): the completion handler keeps it
    // alive until the socket is done with it.
    auto item = std::make_shared<std::pair<Write, bool>>(std::move(writes_.front()));
    writes_.pop_front();
    item->first([self = shared_from_this(), item](beast::error_code ec, size_t) {
        if (ec) return self->client_gone();
        if (item->second) self->on_exchange_done();
        self->write_next();
    });
}

void Connection::on_exchange_done() {
    auto server = server_.lock();
    std::shared_ptr<RequestExchange> done = std::move(current_);
    if (!done) return;
    --server->in_progress;
    done->written();
    stream_.expires_never();
    if (done->keep_alive() && server->acceptor.is_open()) {
        read_request();
    } else {
        close();
    }
}

void Connection::client_gone() {
    if (gone_) return;
    gone_ = true;
    writes_.clear();
    if (current_) {
        if (auto server = server_.lock()) --server->in_progress;
        std::shared_ptr<RequestExchange> exchange = std::move(current_);
        exchange->client_gone();
    }
    close();
}

namespace {

void accept_next(const std::shared_ptr<HttpServer::State>& state) {
    state->acceptor.async_accept([weak = std::weak_ptr(state)](beast::error_code ec, tcp::socket socket) {
        auto server = weak.lock();
        if (!server || !server->acceptor.is_open()) return;
        if (!ec) {
            auto connection = std::make_shared<Connection>(std::move(socket), server);
            server->connections.insert(connection);
            std::erase_if(server->connections, [](const auto& c) { return c.expired(); });
            connection->start();
        }
        accept_next(server);
    });
}

}  // namespace

HttpServer::HttpServer(net::io_context& io, HttpServerOptions options, Handler handler)
    : state_(std::make_shared<State>(io, std::move(options), std::move(handler))) {
    const std::string where = state_->options.host + ":" + std::to_string(state_->options.port);
    beast::error_code ec;
    const auto address = net::ip::make_address(state_->options.host, ec);
    if (ec) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--host: '" + state_->options.host + "' is not an IP address");
    const tcp::endpoint endpoint(address, state_->options.port);
    state_->acceptor.open(endpoint.protocol(), ec);
    if (!ec) state_->acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) state_->acceptor.bind(endpoint, ec);
    if (!ec) state_->acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw sdk::Error(TFX_ERR_IO, "cannot listen on " + where + ": " + ec.message());
    accept_next(state_);
}

HttpServer::~HttpServer() {
    stop_accepting();
    close_all();
}

uint16_t HttpServer::port() const {
    return state_->acceptor.local_endpoint().port();
}

void HttpServer::stop_accepting() {
    beast::error_code ignored;
    state_->acceptor.close(ignored);
}

int64_t HttpServer::requests_in_progress() const {
    return state_->in_progress;
}

void HttpServer::close_all() {
    for (const auto& weak : state_->connections) {
        if (auto connection = weak.lock()) connection->close();
    }
    state_->connections.clear();
}

}  // namespace tfx::serve
