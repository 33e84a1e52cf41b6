// A real HTTP server on loopback that speaks the Hub's resolve protocol, and a second one on
// another port playing the CDN that LFS files redirect to (so the client sees a different
// origin and must drop its token). Both log every request; the CDN can cut, slow down or
// corrupt its answers on demand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace tfx::hub::testing {

struct HttpRequest {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string header(const std::string& name) const;
};

struct HttpReply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;                            // Content-Length is always body.size()
    std::optional<std::size_t> cut_after;        // send this many body bytes, then hang up
    bool stall = false;                          // with cut_after: keep the connection open, silent
    std::chrono::milliseconds delay_per_64k{0};  // a slow link
};

// HTTP/1.1 on 127.0.0.1 with an ephemeral port, one thread per connection.
class HttpServer {
  public:
    using Handler = std::function<HttpReply(const HttpRequest&)>;
    explicit HttpServer(Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    std::string origin() const;  // http://127.0.0.1:PORT

  private:
    void accept_loop();
    void serve(const std::shared_ptr<boost::asio::ip::tcp::socket>& socket);

    Handler handler_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
    std::vector<std::thread> connections_;
    std::thread accept_thread_;
};

// A port on which nothing listens: "connection refused".
unsigned short unused_port();

class FakeHub {
  public:
    static constexpr const char* kToken = "hf_test_secret_token";

    struct Repo {
        std::map<std::string, std::string> refs;                            // branch/tag -> commit
        std::map<std::string, std::map<std::string, std::string>> commits;  // commit -> file -> bytes
        bool gated = false;                                                 // needs kToken
        std::string etag_override;                                          // a hostile server
    };

    struct Logged {
        std::string server;  // "hub" or "cdn"
        std::string method;
        std::string target;
        std::string range;
        std::string authorization;
    };

    FakeHub();
    void add_repo(const std::string& id, Repo repo);
    std::string endpoint() const { return hub_->origin(); }

    std::vector<Logged> log() const;
    std::size_t request_count() const;
    std::size_t cdn_gets(const std::string& sha256) const;

    // The next `times` CDN answers stop after absolute byte `offset` of the file and hang up.
    void cut_cdn_at(std::uint64_t offset, int times);
    // The next `times` CDN answers stop after absolute byte `offset` and then stall: the
    // connection stays open and silent until the client gives up.
    void stall_cdn_at(std::uint64_t offset, int times);
    void corrupt_cdn(bool on) { corrupt_ = on; }
    void slow_cdn(std::chrono::milliseconds per_64k) { cdn_delay_ = per_64k; }

  private:
    HttpReply resolve(const HttpRequest& request);
    HttpReply serve_blob(const HttpRequest& request);
    void record(const char* server, const HttpRequest& request);

    mutable std::mutex mutex_;
    std::map<std::string, Repo> repos_;
    std::map<std::string, std::string> blobs_;  // sha256 -> bytes, what the CDN serves
    std::vector<Logged> log_;
    std::uint64_t cut_offset_ = 0;
    int cuts_left_ = 0;
    bool stall_ = false;  // the cuts stall instead of hanging up
    std::atomic<bool> corrupt_{false};
    std::atomic<std::chrono::milliseconds> cdn_delay_{std::chrono::milliseconds(0)};
    std::unique_ptr<HttpServer> cdn_;
    std::unique_ptr<HttpServer> hub_;
};

// Test helpers shared by the suites.
std::string read_file(const std::string& path);
std::string sha256_hex(const std::string& bytes);
// What the fake Hub sends as the ETag of a small (non-LFS) file.
std::string small_file_etag(const std::string& bytes);
// A real sharded checkpoint: the tensors of `safetensors` split over two files, with an index.
std::map<std::string, std::string> split_checkpoint(const std::string& safetensors);

}  // namespace tfx::hub::testing
