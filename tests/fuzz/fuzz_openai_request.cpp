// The request bodies `tfx serve` takes from the network: any bytes either parse into a request
// or throw RequestError (answered 400); nothing else may escape, crash or hang. Tool-call
// parsing of model output is fuzzed alongside (the model's text is not trusted either).
#include <cstddef>
#include <cstdint>
#include <string>

#include "apps/tfx/serve/openai_request.h"
#include "apps/tfx/serve/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string body(reinterpret_cast<const char*>(data), size);
    try {
        tfx::serve::parse_chat_request(body);
    } catch (const tfx::serve::RequestError&) {
    }
    try {
        tfx::serve::parse_completion_request(body);
    } catch (const tfx::serve::RequestError&) {
    }
    try {
        tfx::serve::parse_embedding_request(body);
    } catch (const tfx::serve::RequestError&) {
    }
    tfx::serve::parse_tool_calls(body, "call_");
    return 0;
}
