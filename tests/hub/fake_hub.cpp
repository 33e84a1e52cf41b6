#include "tests/hub/fake_hub.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include "registry/hub/sha256.h"

namespace tfx::hub::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 206:
            return "Partial Content";
        case 302:
            return "Found";
        case 401:
            return "Unauthorized";
        case 404:
            return "Not Found";
        case 416:
            return "Range Not Satisfiable";
        default:
            return "Status";
    }
}

std::string percent_decode(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::stringstream in(text);
    for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
    return parts;
}

bool is_lfs(const std::string& file) {
    return file.ends_with(".safetensors");
}

HttpReply error_reply(int status, const std::string& code, const std::string& commit = "") {
    HttpReply reply;
    reply.status = status;
    reply.headers = {{"X-Error-Code", code}, {"X-Error-Message", code}};
    if (!commit.empty()) reply.headers.emplace_back("X-Repo-Commit", commit);
    reply.body = code;
    return reply;
}

}  // namespace

std::string HttpRequest::header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

HttpServer::HttpServer(Handler handler)
    : handler_(std::move(handler)), acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
}

HttpServer::~HttpServer() {
    stopping_ = true;
    {
        // Wake the blocking accept() with a connection of our own.
        tcp::socket waker(io_);
        boost::system::error_code ec;
        waker.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_), ec);
    }
    accept_thread_.join();
    std::lock_guard lock(mutex_);
    for (const auto& socket : sockets_) ::shutdown(socket->native_handle(), SHUT_RDWR);
    for (auto& thread : connections_) thread.join();
}

std::string HttpServer::origin() const {
    return "http://127.0.0.1:" + std::to_string(port_);
}

void HttpServer::accept_loop() {
    while (true) {
        auto socket = std::make_shared<tcp::socket>(io_);
        boost::system::error_code ec;
        acceptor_.accept(*socket, ec);
        if (stopping_) return;
        if (ec) continue;
        socket->set_option(tcp::no_delay(true), ec);  // answers go out in two writes: no Nagle wait
        std::lock_guard lock(mutex_);
        sockets_.push_back(socket);
        connections_.emplace_back([this, socket] { serve(socket); });
    }
}

void HttpServer::serve(const std::shared_ptr<tcp::socket>& socket) {
    boost::beast::flat_buffer buffer;
    while (!stopping_) {
        http::request<http::string_body> request;
        boost::system::error_code ec;
        http::read(*socket, buffer, request, ec);
        if (ec) break;
        HttpRequest parsed{std::string(request.method_string()), std::string(request.target()), {}};
        for (const auto& field : request)
            parsed.headers[lower(std::string(field.name_string()))] = std::string(field.value());
        const HttpReply reply = handler_(parsed);

        std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) + "\r\n";
        for (const auto& [name, value] : reply.headers) head += name + ": " + value + "\r\n";
        head += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
        asio::write(*socket, asio::buffer(head), ec);
        if (ec) break;
        if (parsed.method == "HEAD") continue;
        const std::size_t to_send = std::min(reply.body.size(), reply.cut_after.value_or(reply.body.size()));
        constexpr std::size_t chunk = 64 * 1024;
        for (std::size_t sent = 0; sent < to_send && !ec; sent += chunk) {
            if (reply.delay_per_64k.count() > 0) std::this_thread::sleep_for(reply.delay_per_64k);
            asio::write(*socket, asio::buffer(reply.body.data() + sent, std::min(chunk, to_send - sent)), ec);
        }
        if (!ec && reply.cut_after && reply.stall) {
            // A stall: send nothing more until the client hangs up (or the server goes).
            while (!stopping_) {
                pollfd p{socket->native_handle(), POLLIN | POLLRDHUP, 0};
                if (::poll(&p, 1, 50) != 0) break;
            }
        }
        if (ec || reply.cut_after) break;  // a cut: hang up mid-body
    }
    // Hang up but keep the descriptor until the server goes: its number cannot be reused
    // by another socket that the destructor's shutdown() would then hit.
    ::shutdown(socket->native_handle(), SHUT_RDWR);
}

unsigned short unused_port() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    return acceptor.local_endpoint().port();  // closed when this returns
}

FakeHub::FakeHub()
    : cdn_(std::make_unique<HttpServer>([this](const HttpRequest& r) { return serve_blob(r); })),
      hub_(std::make_unique<HttpServer>([this](const HttpRequest& r) { return resolve(r); })) {}

void FakeHub::add_repo(const std::string& id, Repo repo) {
    std::lock_guard lock(mutex_);
    for (const auto& [commit, files] : repo.commits) {
        for (const auto& [name, bytes] : files) {
            if (is_lfs(name)) blobs_[sha256_hex(bytes)] = bytes;
        }
    }
    repos_[id] = std::move(repo);
}

std::vector<FakeHub::Logged> FakeHub::log() const {
    std::lock_guard lock(mutex_);
    return log_;
}

std::size_t FakeHub::request_count() const {
    std::lock_guard lock(mutex_);
    return log_.size();
}

std::size_t FakeHub::cdn_gets(const std::string& sha256) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(log_.begin(), log_.end(), [&](const Logged& l) {
        return l.server == "cdn" && l.method == "GET" && l.target.starts_with("/" + sha256);
    }));
}

void FakeHub::cut_cdn_at(std::uint64_t offset, int times) {
    std::lock_guard lock(mutex_);
    cut_offset_ = offset;
    cuts_left_ = times;
    stall_ = false;
}

void FakeHub::stall_cdn_at(std::uint64_t offset, int times) {
    std::lock_guard lock(mutex_);
    cut_offset_ = offset;
    cuts_left_ = times;
    stall_ = true;
}

void FakeHub::record(const char* server, const HttpRequest& request) {
    std::lock_guard lock(mutex_);
    log_.push_back({server, request.method, request.target, request.header("range"), request.header("authorization")});
}

HttpReply FakeHub::resolve(const HttpRequest& request) {
    record("hub", request);
    // /{org}/{name}/resolve/{revision}/{path...}
    const std::vector<std::string> parts = split(request.target.substr(1, request.target.find('?') - 1), '/');
    if (parts.size() < 5 || parts[2] != "resolve") return error_reply(404, "NotFound");
    const std::string id = parts[0] + "/" + parts[1];
    const std::string revision = percent_decode(parts[3]);
    std::string file;
    for (std::size_t i = 4; i < parts.size(); ++i) file += (i > 4 ? "/" : "") + percent_decode(parts[i]);

    std::lock_guard lock(mutex_);
    const auto repo = repos_.find(id);
    if (repo == repos_.end()) return error_reply(404, "RepoNotFound");
    if (repo->second.gated && request.header("authorization") != std::string("Bearer ") + kToken) {
        return error_reply(401, "GatedRepo");
    }
    std::string commit = revision;
    if (auto ref = repo->second.refs.find(revision); ref != repo->second.refs.end()) commit = ref->second;
    const auto files = repo->second.commits.find(commit);
    if (files == repo->second.commits.end()) return error_reply(404, "RevisionNotFound");
    const auto content = files->second.find(file);
    if (content == files->second.end()) return error_reply(404, "EntryNotFound", commit);

    HttpReply reply;
    reply.headers = {{"X-Repo-Commit", commit}, {"ETag", "\"" + small_file_etag(content->second) + "\""}};
    if (!repo->second.etag_override.empty()) {
        reply.headers[1].second = "\"" + repo->second.etag_override + "\"";
        reply.body = content->second;
    } else if (is_lfs(file)) {
        const std::string sha = sha256_hex(content->second);
        reply.status = 302;
        reply.headers.emplace_back("X-Linked-Etag", "\"" + sha + "\"");
        reply.headers.emplace_back("X-Linked-Size", std::to_string(content->second.size()));
        reply.headers.emplace_back("Location", cdn_->origin() + "/" + sha + "?signature=test");
    } else {
        reply.body = content->second;
    }
    return reply;
}

HttpReply FakeHub::serve_blob(const HttpRequest& request) {
    record("cdn", request);
    const std::string sha = request.target.substr(1, request.target.find('?') - 1);
    std::lock_guard lock(mutex_);
    const auto blob = blobs_.find(sha);
    if (blob == blobs_.end()) return error_reply(404, "NoSuchKey");
    const std::string& bytes = blob->second;

    HttpReply reply;
    std::uint64_t start = 0;
    if (const std::string range = request.header("range"); range.starts_with("bytes=")) {
        start = std::stoull(range.substr(6));
        if (start >= bytes.size()) return error_reply(416, "InvalidRange");
        reply.status = 206;
        reply.headers.emplace_back("Content-Range", "bytes " + std::to_string(start) + "-" +
                                                        std::to_string(bytes.size() - 1) + "/" +
                                                        std::to_string(bytes.size()));
    }
    reply.body = bytes.substr(start);
    if (corrupt_) reply.body[reply.body.size() / 2] = static_cast<char>(reply.body[reply.body.size() / 2] ^ 0x5a);
    if (cuts_left_ > 0 && request.method == "GET") {
        --cuts_left_;
        reply.cut_after = cut_offset_ > start ? cut_offset_ - start : 0;
        reply.stall = stall_;
    }
    reply.delay_per_64k = cdn_delay_.load();
    return reply;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string sha256_hex(const std::string& bytes) {
    Sha256 hash;
    hash.update(bytes);
    return hash.hex_digest();
}

std::string small_file_etag(const std::string& bytes) {
    return sha256_hex("blob " + bytes).substr(0, 40);
}

std::map<std::string, std::string> split_checkpoint(const std::string& safetensors) {
    std::uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i)
        header_size = (header_size << 8) | static_cast<unsigned char>(safetensors[static_cast<std::size_t>(i)]);
    const nlohmann::json header = nlohmann::json::parse(safetensors.substr(8, header_size));
    const std::string data = safetensors.substr(8 + header_size);

    const std::string names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    nlohmann::json headers[2] = {nlohmann::json::object(), nlohmann::json::object()};
    std::string bodies[2];
    nlohmann::json weight_map = nlohmann::json::object();
    std::size_t n = 0;
    for (const auto& [tensor, info] : header.items()) {
        if (tensor == "__metadata__") continue;
        const std::size_t shard = n++ % 2;
        const auto begin = info["data_offsets"][0].get<std::size_t>();
        const auto end = info["data_offsets"][1].get<std::size_t>();
        nlohmann::json moved = info;
        moved["data_offsets"] = {bodies[shard].size(), bodies[shard].size() + (end - begin)};
        bodies[shard] += data.substr(begin, end - begin);
        headers[shard][tensor] = moved;
        weight_map[tensor] = names[shard];
    }
    std::map<std::string, std::string> files;
    for (std::size_t s = 0; s < 2; ++s) {
        std::string text = headers[s].dump();
        text.append((8 - text.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes
        std::string file(8, '\0');
        for (std::size_t i = 0; i < 8; ++i) file[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
        files[names[s]] = file + text + bodies[s];
    }
    const std::size_t total = bodies[0].size() + bodies[1].size();
    files["model.safetensors.index.json"] =
        nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
    return files;
}

}  // namespace tfx::hub::testing
