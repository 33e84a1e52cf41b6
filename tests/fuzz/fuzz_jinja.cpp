// libFuzzer target for the Jinja engine: the input is a template, parsed and rendered against a
// small chat-like context with tight limits. Any tfx::jinja::Error is an expected outcome; a
// crash, a sanitizer report, another exception or a hang is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jinja/jinja.h"

namespace {

const nlohmann::ordered_json& fuzz_context() {
    static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi <think>x</think> \u00e9\u2028 "},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0001", "type": "function",
                 "function": {"name": "f", "arguments": {"a": 1, "b": [true, 2.5, "s"]}}}]},
            {"role": "tool", "content": [{"type": "text", "text": "ok"}]}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                   "parameters": {"type": "object", "properties": {"a": {"type": ["integer", "string"]}},
                                  "required": ["a"]}}}],
        "add_generation_prompt": true,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "n": 3
    })");
    return context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view source(reinterpret_cast<const char*>(data), size);
    tfx::jinja::RenderOptions options;
    options.now = tfx::jinja::DateTime{2025, 3, 9, 14, 5, 7};
    options.max_output_bytes = 1 << 20;
    options.max_loop_iterations = 20000;
    options.max_call_depth = 40;
    options.max_work_bytes = 64 << 20;
    try {
        const auto tmpl = tfx::jinja::Template::parse(source);
        (void)tmpl.render(fuzz_context(), options);
    } catch (const tfx::jinja::Error&) {
        // Syntax, raised and runtime errors are all fine.
    }
    return 0;
}
