#include "registry/hub/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <mutex>
#include <string_view>
#include <utility>

#include "registry/hub/environment.h"

namespace tfx::hub {
namespace {

constexpr int kMaxRedirects = 10;

using UrlPtr = std::unique_ptr<CURLU, decltype(&curl_url_cleanup)>;
using HeaderList = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n')) {
        text.remove_suffix(1);
    }
    return text;
}

void append_header(HeaderList& list, const std::string& line) {
    curl_slist* head = curl_slist_append(list.get(), line.c_str());
    if (head == nullptr) throw HubError(ErrorKind::Io, "out of memory building request headers");
    if (head != list.get()) {  // the first append creates the list
        list.release();
        list.reset(head);
    }
}

std::string url_part(CURLU* url, CURLUPart part, unsigned int flags) {
    char* value = nullptr;
    if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return {};
    std::string out(value);
    curl_free(value);
    return out;
}

// Parses `url`, relative to `base` when one is given; nullptr if it is not a valid URL.
UrlPtr parse_url(const std::string& url, const std::string* base) {
    UrlPtr handle(curl_url(), &curl_url_cleanup);
    if (!handle) throw HubError(ErrorKind::Io, "out of memory parsing a URL");
    if (base != nullptr && curl_url_set(handle.get(), CURLUPART_URL, base->c_str(), 0) != CURLUE_OK)
        return {nullptr, &curl_url_cleanup};
    if (curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return {nullptr, &curl_url_cleanup};
    return handle;
}

std::optional<std::string> origin_of(CURLU* url) {
    const std::string scheme = lower(url_part(url, CURLUPART_SCHEME, 0));
    if (scheme != "http" && scheme != "https") return std::nullopt;
    return scheme + "://" + lower(url_part(url, CURLUPART_HOST, 0)) + ":" +
           url_part(url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

// "scheme://host:port" of an http(s) URL, the unit the token is confined to.
std::optional<std::string> origin_of_url(const std::string& url) {
    UrlPtr parsed = parse_url(url, nullptr);
    return parsed ? origin_of(parsed.get()) : std::nullopt;
}

std::string endpoint_origin(const std::string& endpoint) {
    std::optional<std::string> origin = origin_of_url(endpoint);
    if (!origin)
        throw HubError(ErrorKind::InvalidArgument,
                       "the Hub endpoint (HF_ENDPOINT) '" + endpoint + "' is not an http(s) URL");
    return *origin;
}

std::string resolve_location(const std::string& base, const std::string& location) {
    UrlPtr url = parse_url(location, &base);
    if (!url || !origin_of(url.get())) {
        throw HubError(ErrorKind::Protocol, base + " redirected to '" + location + "', which is not an http(s) URL");
    }
    return url_part(url.get(), CURLUPART_URL, 0);
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
}

struct HttpClient::Transfer {
    using Clock = std::chrono::steady_clock;

    HttpResponse response;
    const BodySink* sink = nullptr;
    bool began = false;
    std::exception_ptr error;
    // Stall detection: the time of the last byte received (or of the start), and how long the
    // transfer may go without one. libcurl's LOW_SPEED_* average the speed over several
    // seconds, so a burst before a stall would hide it for longer than the limit.
    Clock::time_point last_data = Clock::now();
    curl_off_t last_bytes = 0;
    std::chrono::seconds stall_limit{0};
    bool stalled = false;

    static int on_progress(void* user, curl_off_t, curl_off_t now_bytes, curl_off_t, curl_off_t) {
        auto& self = *static_cast<Transfer*>(user);
        const Clock::time_point now = Clock::now();
        if (now_bytes != self.last_bytes) {
            self.last_bytes = now_bytes;
            self.last_data = now;
            return 0;
        }
        if (now - self.last_data >= self.stall_limit) {
            self.stalled = true;
            return 1;  // aborts the transfer
        }
        return 0;
    }

    static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
        auto& self = *static_cast<Transfer*>(user);
        const std::string_view line = trim(std::string_view(data, size * count));
        if (line.starts_with("HTTP/")) {
            // A new answer (e.g. after "100 Continue"): only the last one counts.
            self.response.headers.clear();
            self.response.status = 0;
            const std::size_t space = line.find(' ');
            for (std::size_t i = space == std::string_view::npos ? line.size() : space + 1;
                 i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i) {
                self.response.status = self.response.status * 10 + (line[i] - '0');
            }
        } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
            self.response.headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
        }
        return size * count;
    }

    static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
        auto& self = *static_cast<Transfer*>(user);
        const std::size_t bytes = size * count;
        // Bodies of redirects and errors are not wanted.
        if (self.sink == nullptr || self.response.status < 200 || self.response.status >= 300) return bytes;
        try {
            if (!self.began) {
                self.began = true;
                self.sink->begin(self.response);
            }
            self.sink->write(data, bytes);
            return bytes;
        } catch (...) {
            // Exceptions must not unwind through libcurl: keep it for get() and stop.
            self.error = std::current_exception();
            return 0;
        }
    }
};

HttpClient::HttpClient(const std::string& endpoint, std::optional<std::string> token)
    : endpoint_origin_(endpoint_origin(endpoint)),
      token_(std::move(token)),
      etag_timeout_(env::etag_timeout_seconds()),
      download_timeout_(env::download_timeout_seconds()) {
    if (token_ && std::any_of(token_->begin(), token_->end(), [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
        // It goes into a header line: a space or newline would forge other headers.
        throw HubError(ErrorKind::InvalidArgument,
                       "the Hub token (HF_TOKEN or $HF_HOME/token) contains spaces or control characters");
    }
    static std::once_flag global_init;
    std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl_ = curl_easy_init();
    if (curl_ == nullptr) throw HubError(ErrorKind::Io, "cannot initialise libcurl");
}

HttpClient::~HttpClient() {
    curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::perform(const std::string& url, bool head_only, std::uint64_t range_start,
                                 const BodySink* sink) {
    CURL* curl = static_cast<CURL*>(curl_);
    curl_easy_reset(curl);  // keeps the connection cache
    Transfer transfer;
    transfer.response.url = url;
    transfer.sink = sink;

    // No compression: sizes must be the file's real sizes.
    HeaderList headers(nullptr, &curl_slist_free_all);
    append_header(headers, "Accept-Encoding: identity");
    if (token_ && origin_of_url(url) == endpoint_origin_) append_header(headers, "Authorization: Bearer " + *token_);
    const std::string range = std::to_string(range_start) + "-";
    char error_text[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "tfx-hub libcurl/" LIBCURL_VERSION);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, download_timeout_);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    if (head_only) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, etag_timeout_);
    } else {
        // A transfer may take long, but must not stall: no byte for download_timeout_ seconds
        // (the answer's head included) ends it.
        transfer.stall_limit = std::chrono::seconds(download_timeout_);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
        if (range_start > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
    }

    const CURLcode code = curl_easy_perform(curl);
    if (transfer.error) std::rethrow_exception(transfer.error);
    if (code != CURLE_OK && transfer.stalled) {
        const std::string what = "no data for " + std::to_string(download_timeout_) + " s (HF_HUB_DOWNLOAD_TIMEOUT)";
        if (transfer.response.status != 0)
            throw TransferStalled(ErrorKind::Network, "the download from " + url + " stalled: " + what);
        throw HubError(ErrorKind::Network, origin_of_url(url).value_or(url) + " did not answer: " + what);
    }
    if (code != CURLE_OK) {
        const std::string what = error_text[0] != '\0' ? std::string(error_text) : curl_easy_strerror(code);
        if (transfer.response.status != 0 && !head_only) {
            throw TransferInterrupted(ErrorKind::Network, "the download from " + url + " broke off: " + what);
        }
        throw HubError(ErrorKind::Network, "cannot reach " + origin_of_url(url).value_or(url) + ": " + what);
    }
    const std::string location = transfer.response.header("location");
    if (transfer.response.status >= 300 && transfer.response.status < 400 && !location.empty()) {
        transfer.response.location = resolve_location(url, location);
    }
    return transfer.response;
}

HttpResponse HttpClient::head(const std::string& url) {
    std::string current = url;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
        HttpResponse response = perform(current, true, 0, nullptr);
        if (response.location.empty() || origin_of_url(response.location) != origin_of_url(current)) return response;
        current = response.location;  // e.g. a renamed repo
    }
    throw HubError(ErrorKind::Protocol, "more than " + std::to_string(kMaxRedirects) + " redirects from " + url);
}

HttpResponse HttpClient::get(const std::string& url, std::uint64_t range_start, const BodySink& sink) {
    std::string current = url;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
        HttpResponse response = perform(current, false, range_start, &sink);
        if (response.location.empty()) return response;
        current = response.location;
    }
    throw HubError(ErrorKind::Protocol, "more than " + std::to_string(kMaxRedirects) + " redirects from " + url);
}

}  // namespace tfx::hub
