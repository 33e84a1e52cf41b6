// Task commands over the pipelines: `tfx embed`, `tfx classify`, `tfx fill-mask`,
// `tfx token-classification`, `tfx question-answering`, `tfx zero-shot-classification`,
// `tfx image-classification`, `tfx zero-shot-image-classification`, `tfx text2text-generation`,
// `tfx summarization`, `tfx translation`, `tfx automatic-speech-recognition`.
// Each prints one JSON line per input (per answer for question-answering).
#include <algorithm>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/json_file.h"
#include "registry/image_classification.h"
#include "registry/image_feature_extraction.h"
#include "registry/pipelines.h"
#include "registry/question_answering.h"
#include "registry/speech_recognition.h"
#include "registry/text2text_generation.h"
#include "registry/token_classification.h"
#include "registry/zero_shot_classification.h"
#include "registry/zero_shot_image_classification.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
namespace {

void print(const nlohmann::json& j) {
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

// TEXT arguments, or the "text" of each line of a JSONL file.
std::vector<std::string> inputs(const std::vector<std::string>& texts, const std::string& jsonl) {
    if (jsonl.empty()) {
        if (texts.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "give TEXT arguments or --jsonl FILE");
        return texts;
    }
    std::ifstream in(jsonl);
    if (!in) throw sdk::Error(TFX_ERR_NOT_FOUND, jsonl + ": cannot open");
    std::vector<std::string> out;
    size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
            throw sdk::Error(TFX_ERR_FORMAT, jsonl + ":" + std::to_string(n) + ": expected {\"text\": ...}");
        }
        out.push_back(j["text"].get<std::string>());
    }
    return out;
}

struct EmbedOptions {
    ModelOptions model;
    std::vector<std::string> texts, images;
    std::string jsonl;
    std::string pooling = "mean";
    bool normalize = false;
};

struct ClassifyOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl;
};

struct TokenClassificationOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl;
    std::string aggregation = "none";
    std::string ignore_labels = "O";
};

struct QuestionAnsweringCommand {
    ModelOptions model;
    std::string question, context;
    QuestionAnsweringOptions options;
};

struct ZeroShotOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl, labels;
    std::string hypothesis_template = "This example is {}.";
    bool multi_label = false;
};

struct ImageClassificationOptions {
    ModelOptions model;
    std::vector<std::string> images;
    int64_t top_k = 5;
};

struct ZeroShotImageOptions {
    ModelOptions model;
    std::vector<std::string> images;
    std::string labels;
    std::string hypothesis_template = "This is a photo of {}.";
};

struct SpeechRecognitionOptions {
    ModelOptions model;
    std::vector<std::string> audio;
    std::string language, task, generation_config;
    int64_t max_new_tokens = 0, num_beams = 0;
};

struct Text2TextOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl, task, generation_config;
    int64_t max_new_tokens = 0, num_beams = 0;
};

// `tfx text2text-generation`, `tfx summarization`, `tfx translation`: one command each, the
// same pipeline; the generation config is the model's, updated by the task's params, then by
// --generation-config FILE and the flags.
void add_text2text_command(CLI::App& app, const std::string& name, const std::string& description) {
    auto o = std::make_shared<Text2TextOptions>();
    o->task = name;
    auto* cmd = app.add_subcommand(name, description);
    o->model.add_to(cmd);
    cmd->add_option("TEXT", o->texts, "Texts (each the encoder's input, after the task's prefix)");
    cmd->add_option("--jsonl", o->jsonl, "File of {\"text\": ...} lines");
    if (name == "translation") {
        cmd->add_option("--task", o->task,
                        "translation_XX_to_YY, a key of config.json's task_specific_params (default: the model's "
                        "only one)");
    }
    cmd->add_option("--generation-config", o->generation_config, "generation_config.json fields over the task's");
    cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate")->check(integer_at_least(1));
    cmd->add_option("--num-beams", o->num_beams, "Beams (1: greedy)")->check(integer_at_least(1));
    cmd->callback([o] {
        Text2TextGenerationPipeline pipeline(o->model.model, o->model.session_options(), o->task);
        GenerationConfig config = pipeline.config();
        if (!o->generation_config.empty()) config.read(load_json_file(o->generation_config));
        if (o->max_new_tokens > 0) {
            config.max_new_tokens = o->max_new_tokens;
            config.max_length.reset();
        }
        if (o->num_beams > 0) config.num_beams = o->num_beams;
        config.validate();
        for (const std::string& text : inputs(o->texts, o->jsonl)) {
            nlohmann::json all = nlohmann::json::array();
            const std::vector<std::vector<std::string>> outputs = pipeline({text}, config);
            for (const std::string& out : outputs.front()) all.push_back({{pipeline.output_key(), out}});
            print(all.size() == 1 ? all.front() : all);
        }
    });
}

struct FillMaskOptions {
    ModelOptions model;
    std::string text;
    int top_k = 5;
};

// fn over the texts a group at a time, in order: a group's inputs run together (ragged forward
// calls), and its lines are printed before the next group is read into the model.
template <class Fn>
void for_groups(const std::vector<std::string>& texts, Fn&& fn) {
    constexpr size_t kGroup = 256;
    for (size_t first = 0; first < texts.size(); first += kGroup) {
        fn(std::vector<std::string>(
            texts.begin() + static_cast<std::ptrdiff_t>(first),
            texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), first + kGroup))));
    }
}

}  // namespace

void add_task_commands(CLI::App& app) {
    auto e = std::make_shared<EmbedOptions>();
    auto* embed = app.add_subcommand("embed",
                                     "Sentence or image embeddings: one {\"embedding\": [...]} line per input (a "
                                     "base model's pooled hidden states; CLIP's text or image embeddings)");
    e->model.add_to(embed);
    embed->add_option("TEXT", e->texts, "Texts to embed");
    embed->add_option("--jsonl", e->jsonl, "File of {\"text\": ...} lines");
    embed->add_option("--image", e->images,
                      "Image files (PNG or JPEG) to embed instead of texts, through the model's image processor "
                      "(a vision base model such as ViTModel, or CLIP)");
    embed->add_option("--pooling", e->pooling, "mean or cls")
        ->check(CLI::IsMember({"mean", "cls"}))
        ->capture_default_str();
    embed->add_flag("--normalize", e->normalize, "L2-normalize each vector");
    embed->callback([e] {
        const Pooling pooling = e->pooling == "cls" ? Pooling::cls : Pooling::mean;
        if (!e->images.empty()) {
            if (!e->texts.empty() || !e->jsonl.empty())
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--image: embed images or texts, not both");
            ImageFeatureExtractionPipeline pipeline(e->model.model, e->model.session_options());
            for (const std::string& file : e->images) {
                print({{"image", file}, {"embedding", pipeline({read_image(file)}, pooling, e->normalize).front()}});
            }
            return;
        }
        FeatureExtractionPipeline pipeline(e->model.model, e->model.session_options());
        for_groups(inputs(e->texts, e->jsonl), [&](const std::vector<std::string>& texts) {
            for (auto& embedding : pipeline(texts, pooling, e->normalize)) print({{"embedding", std::move(embedding)}});
        });
    });

    auto c = std::make_shared<ClassifyOptions>();
    auto* classify = app.add_subcommand("classify", "Text classification: label and score per input");
    c->model.add_to(classify);
    classify->add_option("TEXT", c->texts, "Texts to classify");
    classify->add_option("--jsonl", c->jsonl, "File of {\"text\": ...} lines");
    classify->callback([c] {
        TextClassificationPipeline pipeline(c->model.model, c->model.session_options());
        for_groups(inputs(c->texts, c->jsonl), [&](const std::vector<std::string>& texts) {
            for (const auto& scores : pipeline(texts)) {
                nlohmann::json all = nlohmann::json::array();
                for (const auto& s : scores) all.push_back({{"label", s.label}, {"score", s.score}});
                print({{"label", scores.front().label}, {"score", scores.front().score}, {"scores", all}});
            }
        });
    });

    auto t = std::make_shared<TokenClassificationOptions>();
    auto* tokens = app.add_subcommand(
        "token-classification",
        "Named entities (token classification): one JSON list of entities per input, as transformers' pipeline");
    t->model.add_to(tokens);
    tokens->add_option("TEXT", t->texts, "Texts to tag");
    tokens->add_option("--jsonl", t->jsonl, "File of {\"text\": ...} lines");
    tokens
        ->add_option("--aggregation-strategy", t->aggregation,
                     "none (every token), simple (B-/I- groups), or first, average, max (words, then groups)")
        ->check(CLI::IsMember({"none", "simple", "first", "average", "max"}))
        ->capture_default_str();
    tokens->add_option("--ignore-labels", t->ignore_labels, "Comma-separated labels left out (\"\": none)")
        ->capture_default_str();
    tokens->callback([t] {
        TokenClassificationPipeline pipeline(t->model.model, t->model.session_options());
        const Aggregation aggregation = aggregation_named(t->aggregation);
        std::vector<std::string> ignore;
        for (size_t at = 0; at < t->ignore_labels.size();) {
            const size_t comma = std::min(t->ignore_labels.find(',', at), t->ignore_labels.size());
            if (comma > at) ignore.push_back(t->ignore_labels.substr(at, comma - at));
            at = comma + 1;
        }
        for_groups(inputs(t->texts, t->jsonl), [&](const std::vector<std::string>& texts) {
            for (const auto& entities : pipeline(texts, aggregation, ignore))
                print(entities_json(entities, aggregation));
        });
    });

    auto q = std::make_shared<QuestionAnsweringCommand>();
    auto* qa = app.add_subcommand("question-answering",
                                  "Extractive question answering: the best spans of --context for --question, one "
                                  "{\"score\", \"start\", \"end\", \"answer\"} line each, as transformers' pipeline");
    q->model.add_to(qa);
    qa->add_option("--question", q->question, "The question")->required();
    qa->add_option("--context", q->context, "The text that holds the answer")->required();
    qa->add_option("--top-k", q->options.top_k, "Answers to print")->capture_default_str()->check(integer_at_least(1));
    qa->add_option("--max-answer-len", q->options.max_answer_len, "Longest answer, in tokens")
        ->capture_default_str()
        ->check(integer_at_least(1));
    qa->add_flag("--handle-impossible-answer", q->options.handle_impossible_answer,
                 "Let the empty answer compete (the lowest score of [CLS] as start and end in a window)");
    qa->add_option("--max-seq-len", q->options.max_seq_len,
                   "Tokens a window takes, question and special tokens included (default: the least of 384, the "
                   "tokenizer's model_max_length and the model's positions)")
        ->check(integer_at_least(1));
    qa->add_option("--doc-stride", q->options.doc_stride,
                   "Context tokens a window shares with the one before, for contexts longer than one window "
                   "(default: min(max-seq-len / 2, 128))")
        ->check(integer_at_least(0));
    qa->callback([q] {
        QuestionAnsweringPipeline pipeline(q->model.model, q->model.session_options());
        for (const Answer& a : pipeline(q->question, q->context, q->options)) print(answer_json(a));
    });

    auto z = std::make_shared<ZeroShotOptions>();
    auto* zero = app.add_subcommand("zero-shot-classification",
                                    "Labels no model was trained on, through an NLI model: one {\"sequence\", "
                                    "\"labels\", \"scores\"} line per input, as transformers' pipeline");
    z->model.add_to(zero);
    zero->add_option("TEXT", z->texts, "Texts to classify");
    zero->add_option("--jsonl", z->jsonl, "File of {\"text\": ...} lines");
    zero->add_option("--labels", z->labels, "Comma-separated candidate labels")->required();
    zero->add_option("--hypothesis-template", z->hypothesis_template, "The hypothesis, {} where the label goes")
        ->capture_default_str();
    zero->add_flag("--multi-label", z->multi_label, "Score each label on its own (entailment vs contradiction)");
    zero->callback([z] {
        ZeroShotClassificationPipeline pipeline(z->model.model, z->model.session_options());
        const std::vector<std::string> labels = candidate_labels_of(z->labels);
        for (const auto& text : inputs(z->texts, z->jsonl)) {
            print(zero_shot_json(pipeline(text, labels, z->hypothesis_template, z->multi_label)));
        }
    });

    auto ic = std::make_shared<ImageClassificationOptions>();
    auto* image = app.add_subcommand("image-classification",
                                     "Image classification (PNG or JPEG files): one {\"image\", \"labels\": "
                                     "[{\"label\", \"score\"}, ...]} line per image, best first, as "
                                     "transformers' pipeline");
    ic->model.add_to(image);
    image->add_option("IMAGE", ic->images, "Image files")->required();
    image->add_option("--top-k", ic->top_k, "Labels to print per image")
        ->capture_default_str()
        ->check(integer_at_least(1));
    image->callback([ic] {
        ImageClassificationPipeline pipeline(ic->model.model, ic->model.session_options());
        for (const std::string& file : ic->images) {
            const auto labels = pipeline.classify({read_image(file)}, ic->top_k).front();
            nlohmann::json all = nlohmann::json::array();
            for (const ImageLabel& l : labels) all.push_back({{"label", l.label}, {"score", l.score}});
            print({{"image", file}, {"labels", all}});
        }
    });

    auto zi = std::make_shared<ZeroShotImageOptions>();
    auto* zero_image = app.add_subcommand(
        "zero-shot-image-classification",
        "Labels no model was trained on, for images, through CLIP: one {\"image\", \"labels\": [{\"label\", "
        "\"score\"}, ...]} line per image, best first, as transformers' pipeline");
    zi->model.add_to(zero_image);
    zero_image->add_option("IMAGE", zi->images, "Image files (PNG or JPEG)")->required();
    zero_image->add_option("--labels", zi->labels, "Comma-separated candidate labels")->required();
    zero_image->add_option("--hypothesis-template", zi->hypothesis_template, "The text, {} where the label goes")
        ->capture_default_str();
    zero_image->callback([zi] {
        ZeroShotImageClassificationPipeline pipeline(zi->model.model, zi->model.session_options());
        const std::vector<std::string> labels = candidate_labels_of(zi->labels);
        for (const std::string& file : zi->images) {
            const ImageLabelScores result = pipeline(read_image(file), labels, zi->hypothesis_template);
            nlohmann::json all = nlohmann::json::array();
            for (size_t i = 0; i < result.labels.size(); ++i)
                all.push_back({{"label", result.labels[i]}, {"score", result.scores[i]}});
            print({{"image", file}, {"labels", all}});
        }
    });

    auto sr = std::make_shared<SpeechRecognitionOptions>();
    auto* speech = app.add_subcommand(
        "automatic-speech-recognition",
        "Speech to text through Whisper (WAV, FLAC or Ogg files, at the feature extractor's sampling rate, up to "
        "its 30 s window): one {\"audio\", \"text\", \"language\"} line per file, as transformers' pipeline");
    sr->model.add_to(speech);
    speech->add_option("AUDIO", sr->audio, "Sound files")->required();
    speech->add_option(
        "--language", sr->language,
        "The spoken language (en, de, ..., <|en|> or a name: english) of a multilingual model (default: the "
        "generation config's forced ids, else detected)");
    speech->add_option("--task", sr->task,
                       "transcribe, or translate (to English) (default: the generation config's forced ids; "
                       "transcribe when --language is given)");
    speech->add_option("--generation-config", sr->generation_config, "generation_config.json fields over the model's");
    speech->add_option("--max-new-tokens", sr->max_new_tokens, "Tokens to generate")->check(integer_at_least(1));
    speech->add_option("--num-beams", sr->num_beams, "Beams (1: greedy)")->check(integer_at_least(1));
    speech->callback([sr] {
        AutomaticSpeechRecognitionPipeline pipeline(sr->model.model, sr->model.session_options());
        GenerationConfig config = pipeline.config();
        if (!sr->generation_config.empty()) config.read(load_json_file(sr->generation_config));
        if (sr->max_new_tokens > 0) {
            config.max_new_tokens = sr->max_new_tokens;
            config.max_length.reset();
        }
        if (sr->num_beams > 0) config.num_beams = sr->num_beams;
        config.validate();
        AutomaticSpeechRecognitionPipeline::Options options;
        if (!sr->language.empty()) options.language = sr->language;
        if (!sr->task.empty()) options.task = sr->task;
        for (const std::string& file : sr->audio) {
            const Transcription heard = pipeline({read_audio(file)}, options, config).front();
            print({{"audio", file}, {"text", heard.text}, {"language", heard.language}, {"tokens", heard.tokens}});
        }
    });

    add_text2text_command(app, "text2text-generation",
                          "An encoder-decoder model's output for each text: one {\"generated_text\"} line per input");
    add_text2text_command(app, "summarization",
                          "Summaries (config.json's task_specific_params.summarization: prefix, beams, lengths): one "
                          "{\"summary_text\"} line per input");
    add_text2text_command(app, "translation",
                          "Translations (task_specific_params.translation_XX_to_YY): one {\"translation_text\"} "
                          "line per input");

    auto f = std::make_shared<FillMaskOptions>();
    auto* fill = app.add_subcommand("fill-mask", "The most likely tokens for the mask token in TEXT");
    f->model.add_to(fill);
    fill->add_option("TEXT", f->text, "Text with exactly one mask token")->required();
    fill->add_option("--top-k", f->top_k, "Candidates to print")->capture_default_str()->check(integer_at_least(1));
    fill->callback([f] {
        FillMaskPipeline pipeline(f->model.model, f->model.session_options());
        for (const auto& cand : pipeline(f->text, f->top_k)) {
            print({{"token", cand.token},
                   {"token_str", cand.token_str},
                   {"score", cand.score},
                   {"sequence", cand.sequence}});
        }
    });
}

}  // namespace tfx::cli
