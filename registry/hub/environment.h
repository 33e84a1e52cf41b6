// The HF_* environment variables, read the way huggingface_hub reads them.
#pragma once

#include <optional>
#include <string>

namespace tfx::hub::env {

// HF_ENDPOINT without a trailing slash, else https://huggingface.co.
std::string endpoint();

// HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH or $HF_HOME/token;
// whitespace trimmed, nullopt when none is set.
std::optional<std::string> token();

// HF_HUB_OFFLINE is 1, true, yes or on (any case).
bool offline();

// HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT in seconds (10 by default): how long a
// metadata request may take, and how long a transfer may stall.
long etag_timeout_seconds();
long download_timeout_seconds();

}  // namespace tfx::hub::env
