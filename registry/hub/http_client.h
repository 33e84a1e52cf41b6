// HTTP over libcurl for the resolve protocol. Redirects are followed here, not by curl, so
// that the token is sent only to the endpoint's own origin (scheme, host and port): a
// redirect to a CDN must not carry it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "registry/hub/hub.h"

namespace tfx::hub {

struct HttpResponse {
    long status = 0;
    std::string url;                             // the URL that gave this answer
    std::string location;                        // for a redirect: its absolute target
    std::map<std::string, std::string> headers;  // names in lower case

    std::string header(const std::string& lower_name) const;  // "" when absent
};

// The body of a 2xx answer to get(). begin() sees the answer's head before the first byte;
// either callback may throw (e.g. disk full): get() rethrows once curl has stopped.
struct BodySink {
    std::function<void(const HttpResponse&)> begin;
    std::function<void(const char* data, std::size_t size)> write;
};

// The connection broke off or stalled after the answer had started: worth resuming.
class TransferInterrupted : public HubError {
  public:
    using HubError::HubError;
};

// The body stopped coming: no byte for HF_HUB_DOWNLOAD_TIMEOUT seconds, the connection still open.
class TransferStalled : public TransferInterrupted {
  public:
    using TransferInterrupted::TransferInterrupted;
};

class HttpClient {
  public:
    HttpClient(const std::string& endpoint, std::optional<std::string> token);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // HEAD, following redirects within one origin; a redirect to another origin is returned
    // as is (its headers carry the Hub's metadata, its location is where the bytes are).
    HttpResponse head(const std::string& url);

    // GET from byte `range_start` on, following redirects. Throws HubError(Network) when
    // the server cannot be reached or does not answer, TransferInterrupted when the body breaks
    // off and TransferStalled when no byte comes for download_timeout() seconds.
    HttpResponse get(const std::string& url, std::uint64_t range_start, const BodySink& sink);

    // HF_HUB_DOWNLOAD_TIMEOUT: the longest a transfer may go without a byte, in seconds.
    long download_timeout() const { return download_timeout_; }

  private:
    struct Transfer;
    HttpResponse perform(const std::string& url, bool head_only, std::uint64_t range_start, const BodySink* sink);

    void* curl_;  // CURL*, kept across requests so connections are reused
    std::string endpoint_origin_;
    std::optional<std::string> token_;
    long etag_timeout_;
    long download_timeout_;
};

}  // namespace tfx::hub
