// apply_chat_template semantics (as transformers v4.51 has them) on small, self-contained configs.
#include <string>

#include "jinja/chat_template.h"
#include "jinja_test_support.h"

namespace tfx::jinja::test {
namespace {

using json = nlohmann::ordered_json;

json config_with(const json& chat_template) {
    json config = json::parse(R"({
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
        "eos_token": "</s>",
        "unk_token": null,
        "pad_token": "",
        "additional_special_tokens": ["<a>", "<b>"],
        "extra_special_tokens": {"image_token": "<img>"}
    })");
    config["chat_template"] = chat_template;
    return config;
}

const char* const kChatml =
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}";

ChatRequest conversation(const char* messages_json) {
    ChatRequest request;
    request.messages = json::parse(messages_json);
    request.options = reference_options();
    return request;
}

TEST(ChatTemplate, RendersMessagesAndGenerationPrompt) {
    ChatRequest request = conversation(R"([{"role": "user", "content": "Hi"}])");
    request.add_generation_prompt = true;
    EXPECT_EQ(apply_chat_template(config_with(kChatml), request), "<|user|>Hi<|end|><|assistant|>");
}

TEST(ChatTemplate, PassesSetSpecialTokensOnly) {
    const json config = config_with(
        "{{ bos_token }}|{{ eos_token }}|{{ unk_token is defined }}|{{ pad_token is defined }}|"
        "{{ additional_special_tokens }}|{{ image_token }}");
    EXPECT_EQ(apply_chat_template(config, conversation("[]")), "<s>|</s>|False|False|['<a>', '<b>']|<img>");
}

TEST(ChatTemplate, ToolsAndDocumentsAreAlwaysDefined) {
    const json config = config_with("{{ tools is defined }}{{ tools is none }}{{ documents is none }}");
    EXPECT_EQ(apply_chat_template(config, conversation("[]")), "TrueTrueTrue");
}

TEST(ChatTemplate, ExtraVariablesWinOverSpecialTokens) {
    ChatRequest request = conversation("[]");
    request.extra = json::parse(R"({"eos_token": "<eos>", "documents": [{"text": "d"}], "date_string": "1 Jan"})");
    const json config = config_with("{{ eos_token }} {{ documents[0].text }} {{ date_string }}");
    EXPECT_EQ(apply_chat_template(config, request), "<eos> d 1 Jan");
}

TEST(ChatTemplate, ReservedExtraVariablesAreRejected) {
    ChatRequest request = conversation("[]");
    request.extra = json::parse(R"({"messages": []})");
    EXPECT_THROW(apply_chat_template(config_with(kChatml), request), Error);
}

TEST(ChatTemplate, NamedTemplatesPickToolUseOnlyWithTools) {
    const ChatTemplate chat(config_with(json::parse(R"([
        {"name": "default", "template": "D"},
        {"name": "tool_use", "template": "T{{ tools|length }}"},
        {"name": "rag", "template": "R"}
    ])")));
    ChatRequest request = conversation("[]");
    EXPECT_EQ(chat.apply(request), "D");
    EXPECT_EQ(chat.select(std::nullopt, false), "default");
    request.tools = json::array({json::object()});
    EXPECT_EQ(chat.apply(request), "T1");
    EXPECT_EQ(chat.select(std::nullopt, true), "tool_use");
    request.template_name = "rag";
    EXPECT_EQ(chat.apply(request), "R");
    request.template_name = "missing";
    EXPECT_THROW(chat.apply(request), Error);
}

TEST(ChatTemplate, ListWithoutDefaultFails) {
    const ChatTemplate chat(config_with(json::parse(R"([{"name": "tool_use", "template": "T"}])")));
    EXPECT_THROW(chat.apply(conversation("[]")), Error);
}

TEST(ChatTemplate, BrokenUnusedTemplateDoesNotMatter) {
    const ChatTemplate chat(config_with(json::parse(R"([
        {"name": "default", "template": "ok"}, {"name": "broken", "template": "{% if %}"}
    ])")));
    EXPECT_EQ(chat.apply(conversation("[]")), "ok");
    ChatRequest request = conversation("[]");
    request.template_name = "broken";
    try {
        chat.apply(request);
        ADD_FAILURE() << "the broken template rendered";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::syntax);
    }
}

TEST(ChatTemplate, MissingChatTemplateIsAnError) {
    EXPECT_THROW(ChatTemplate(json::parse(R"({"eos_token": "</s>"})")), Error);
}

TEST(ChatTemplate, ContinueFinalMessageCutsAfterTheContent) {
    ChatRequest request =
        conversation(R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is"}])");
    request.continue_final_message = true;
    EXPECT_EQ(apply_chat_template(config_with(kChatml), request), "<|user|>Hi<|end|><|assistant|>The answer is");
}

TEST(ChatTemplate, ContinueFinalMessageKeepsOnlyWhatTheTemplateKept) {
    // The template trims the content, so the trailing space of the prefill cannot be kept.
    const json config = config_with("{% for m in messages %}[{{ m.content|trim }}]{% endfor %}");
    ChatRequest request = conversation(R"([{"role": "assistant", "content": "  Sure "}])");
    request.continue_final_message = true;
    EXPECT_EQ(apply_chat_template(config, request), "[Sure");
}

TEST(ChatTemplate, ContinueFinalMessageUsesTheLastTextPart) {
    ChatRequest request = conversation(
        R"([{"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "image"}, {"type": "text", "text": "two"}]}])");
    request.continue_final_message = true;
    const json config = config_with("{% for p in messages[0].content if p.text %}<{{ p.text }}>{% endfor %}");
    EXPECT_EQ(apply_chat_template(config, request), "<one><two");
}

TEST(ChatTemplate, ContinueFinalMessageErrors) {
    ChatRequest request = conversation(R"([{"role": "assistant", "content": "absent"}])");
    request.continue_final_message = true;
    EXPECT_THROW(apply_chat_template(config_with("nothing"), request), Error);
    request.add_generation_prompt = true;
    EXPECT_THROW(apply_chat_template(config_with(kChatml), request), Error);
}

TEST(ChatTemplate, StrftimeNowUsesTheInjectedClock) {
    const json config = config_with("{{ strftime_now('%d %b %Y') }} / {{ strftime_now('%B %d, %Y') }}");
    EXPECT_EQ(apply_chat_template(config, conversation("[]")), "09 Mar 2025 / March 09, 2025");
}

TEST(ChatTemplate, KeyOrderOfInputsIsKeptByTojson) {
    ChatRequest request = conversation("[]");
    request.tools = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}])");
    const json config = config_with("{{ tools[0]|tojson }}");
    EXPECT_EQ(apply_chat_template(config, request),
              R"({"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}})");
}

}  // namespace
}  // namespace tfx::jinja::test
