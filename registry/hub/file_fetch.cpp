#include "registry/hub/file_fetch.h"

#include <optional>
#include <system_error>

#include "registry/hub/blob_fetch.h"
#include "registry/hub/file_lock.h"
#include "registry/hub/names.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

struct FileMetadata {
    bool present = false;  // false: the Hub said the repo lacks the file
    std::string commit;    // empty only for an absent file whose answer named no commit
    std::string etag;
    std::uint64_t size = 0;
    std::string location;
};

std::string unquote(std::string etag) {
    if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
    return etag;
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
    if (text.empty() || text.size() > 19) return std::nullopt;  // digits only, no overflow
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

[[noreturn]] void throw_for_status(const FetchContext& context, const HttpResponse& response,
                                   const std::string& revision, const std::string& file) {
    const std::string code = response.header("x-error-code");
    const std::string& repo = context.repo_id;
    const std::string status = "HTTP " + std::to_string(response.status);
    if (response.status == 404 && code == "RevisionNotFound") {
        throw HubError(ErrorKind::RevisionNotFound, "revision '" + revision + "' not found in " + repo + " on " +
                                                        context.endpoint + " (no such branch, tag or commit)");
    }
    if (response.status == 404 && code == "RepoNotFound") {
        throw HubError(ErrorKind::RepoNotFound, "repository " + repo + " not found on " + context.endpoint +
                                                    " (check the id; if it is private, set HF_TOKEN)");
    }
    if (response.status == 401 && code == "GatedRepo") {
        throw HubError(ErrorKind::Unauthorized, repo + " is a gated repository: accept its conditions on " +
                                                    context.endpoint + "/" + repo +
                                                    " and set HF_TOKEN (or put a token in $HF_HOME/token)");
    }
    if (response.status == 401) {
        throw HubError(ErrorKind::Unauthorized, repo + " needs authentication (" + status +
                                                    "): it is private, gated or does not exist. Set HF_TOKEN to a "
                                                    "token with read access (or put one in $HF_HOME/token)");
    }
    if (response.status == 403) {
        throw HubError(ErrorKind::Unauthorized, "access to " + repo + " denied (" + status +
                                                    "): if it is gated, accept its conditions on " + context.endpoint +
                                                    "/" + repo + "; check that HF_TOKEN has read access");
    }
    if (response.status == 429 || response.status >= 500) {
        throw HubError(ErrorKind::Network, context.endpoint + " answered " + status + " for " + file + " of " + repo +
                                               " (the Hub is overloaded or down; try again later)");
    }
    throw HubError(ErrorKind::Protocol, "unexpected " + status + " from " + response.url);
}

// Asks the Hub about one file; records .no_exist when it says the file is absent.
FileMetadata query(FetchContext& context, const std::string& revision, const std::string& file) {
    const std::string url = context.endpoint + "/" + context.repo_id + "/resolve/" + url_quote(revision, false) + "/" +
                            url_quote(file, true);
    const HttpResponse response = context.http.head(url);
    const std::string header_commit = response.header("x-repo-commit");
    if (response.status == 404 &&
        (response.header("x-error-code") == "EntryNotFound" || response.header("x-error-code").empty())) {
        if (!is_commit_hash(header_commit)) return {};
        context.cache.mark_absent(header_commit, file);
        context.cache.write_ref(revision, header_commit);
        FileMetadata absent;
        absent.commit = header_commit;
        return absent;
    }
    if (response.status >= 400 || response.status < 200) throw_for_status(context, response, revision, file);

    // From here on every value comes from the network and becomes a path: check them all.
    const std::string not_hub = "the server at " + context.endpoint + " does not answer like the Hugging Face Hub (";
    const std::string check = "); check HF_ENDPOINT and any proxy";
    if (!is_commit_hash(header_commit))
        throw HubError(ErrorKind::Protocol, not_hub + "no valid X-Repo-Commit for " + url + check);
    std::string etag = response.header("x-linked-etag");
    if (etag.empty()) etag = response.header("etag");
    etag = unquote(etag);
    if (!is_safe_etag(etag)) throw HubError(ErrorKind::Protocol, not_hub + "ETag '" + etag + "' for " + url + check);
    std::string size_text = response.header("x-linked-size");
    if (size_text.empty()) size_text = response.header("content-length");
    const auto size = parse_size(size_text);
    if (!size) throw HubError(ErrorKind::Protocol, not_hub + "size '" + size_text + "' for " + url + check);
    if (response.status >= 300 && response.location.empty()) {
        throw HubError(ErrorKind::Protocol, not_hub + "a redirect without Location for " + url + check);
    }
    return {true, header_commit, etag, *size, response.location.empty() ? response.url : response.location};
}

bool blob_is_complete(const fs::path& blob, std::uint64_t size) {
    std::error_code ec;
    return fs::is_regular_file(blob, ec) && fs::file_size(blob, ec) == size && !ec;
}

}  // namespace

FetchedFile fetch_file(FetchContext& context, const std::string& revision, const std::string& file) {
    check_repo_file(file, context.repo_id);
    const RepoCache& cache = context.cache;
    // A commit is immutable: what its snapshot holds needs no request.
    if (is_commit_hash(revision) && cache.has_file(revision, file)) return {FileState::Present, revision};

    const FileMetadata meta = query(context, revision, file);
    if (!meta.present) return {FileState::Absent, meta.commit};
    cache.write_ref(revision, meta.commit);
    if (cache.has_file(meta.commit, file)) return {FileState::Present, meta.commit};

    Progress progress;
    progress.repo_id = context.repo_id;
    progress.file = file;
    bool fetched = false;
    {
        // Another thread or process may be fetching the same blob: wait, then reuse its work.
        FileLock lock(cache.lock(meta.etag));
        const fs::path blob = cache.blob(meta.etag);
        fetched = !blob_is_complete(blob, meta.size);
        if (fetched) {
            std::error_code ec;
            fs::create_directories(blob.parent_path(), ec);
            if (ec) throw_io_error("create folder", blob.parent_path(), ec.value());
            context.bytes_downloaded +=
                fetch_blob(context.http, {meta.location, meta.etag, meta.size}, blob, progress, context.on_progress);
        }
        cache.link(meta.commit, file, meta.etag);
    }
    if (fetched && context.on_progress) {
        progress.bytes = progress.total = meta.size;
        progress.done = true;
        context.on_progress(progress);
    }
    return {FileState::Present, meta.commit};
}

}  // namespace tfx::hub
