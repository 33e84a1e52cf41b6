#include "post_processors.h"

#include "byte_level.h"
#include "encoding_ops.h"
#include "utf8.h"

namespace tfx::tok {
namespace {

Encoding without_overflow(const Encoding& e) {
    Encoding copy = e;
    copy.overflowing.clear();
    return copy;
}

Encoding special_encoding(const std::vector<int32_t>& ids, const std::vector<std::string>& tokens, uint32_t type_id) {
    Encoding e;
    e.ids = ids;
    e.tokens = tokens;
    e.type_ids.assign(ids.size(), type_id);
    e.offsets.assign(ids.size(), Offsets{});
    e.attention_mask.assign(ids.size(), 1);
    e.special_tokens_mask.assign(ids.size(), 1);
    return e;
}

Encoding wrap(const Encoding& e, const SpecialTokenRef* before, const SpecialTokenRef& after, uint32_t before_type,
              uint32_t after_type, const std::vector<uint32_t>* type_ids_override) {
    Encoding out;
    if (before) out = special_encoding({before->id}, {before->token}, before_type);
    Encoding body = e;
    if (type_ids_override) body.type_ids = *type_ids_override;
    merge_into(out, body);
    merge_into(out, special_encoding({after.id}, {after.token}, after_type));
    return out;
}

bool is_space_like(char32_t c) {
    return c == byte_level::table().byte_to_char[' '] || utf8::is_whitespace(c);
}

// Moves offsets past leading/trailing spaces carried by byte-level tokens (the Rust crate's
// process_offsets; counts are in chars).
void trim_offsets(Encoding& e, bool add_prefix_space) {
    for (size_t i = 0; i < e.tokens.size(); ++i) {
        std::u32string chars;
        const std::string& t = e.tokens[i];
        for (size_t k = 0, len; k < t.size(); k += len) chars.push_back(utf8::decode(t, k, len));
        size_t leading = 0, trailing = 0;
        while (leading < chars.size() && is_space_like(chars[leading])) ++leading;
        while (trailing < chars.size() && is_space_like(chars[chars.size() - 1 - trailing])) ++trailing;
        Offsets& o = e.offsets[i];
        if (leading > 0) {
            const bool is_first = i == 0 || o.begin == 0;
            if (is_first && add_prefix_space && leading == 1) leading = 0;
            o.begin = std::min(o.begin + leading, o.end);
        }
        if (trailing > 0 && o.end >= trailing) o.end = std::max(o.end - trailing, o.begin);
    }
}

}  // namespace

Encoding post_process(const PostProcessor* processor, Encoding first, Encoding* second, bool add_special_tokens) {
    const auto run = [&](Encoding a, const Encoding* b) {
        std::vector<Encoding> in;
        in.push_back(std::move(a));
        if (b) in.push_back(*b);
        return merge_all(processor ? processor->process(std::move(in), add_special_tokens) : std::move(in));
    };
    const std::vector<Encoding> first_overflow = std::move(first.overflowing);
    first.overflowing.clear();
    std::vector<Encoding> second_overflow;
    if (second) {
        second_overflow = std::move(second->overflowing);
        second->overflowing.clear();
    }
    Encoding result = second_overflow.empty() ? run(std::move(first), second) : run(first, second);
    for (const auto& a_o : first_overflow) {
        result.overflowing.push_back(run(without_overflow(a_o), second));
        for (const auto& b_o : second_overflow) {
            const Encoding b = without_overflow(b_o);
            result.overflowing.push_back(run(without_overflow(a_o), &b));
        }
    }
    for (const auto& b_o : second_overflow) {
        const Encoding b = without_overflow(b_o);
        result.overflowing.push_back(run(first, &b));
    }
    return result;
}

std::vector<Encoding> ByteLevelPostProcessor::process(std::vector<Encoding> encodings, bool) const {
    if (trim_offsets_)
        for (auto& e : encodings) trim_offsets(e, add_prefix_space_);
    return encodings;
}

std::vector<Encoding> BertPostProcessor::process(std::vector<Encoding> encodings, bool add_special_tokens) const {
    if (!add_special_tokens) return encodings;
    std::vector<Encoding> out;
    for (size_t i = 0; i < encodings.size(); ++i) {
        if (i == 0)
            out.push_back(wrap(encodings[i], &cls_, sep_, 0, 0, nullptr));
        else
            out.push_back(wrap(encodings[i], nullptr, sep_, 1, 1, nullptr));
    }
    return out;
}

std::vector<Encoding> RobertaPostProcessor::process(std::vector<Encoding> encodings, bool add_special_tokens) const {
    if (trim_offsets_)
        for (auto& e : encodings) trim_offsets(e, add_prefix_space_);
    if (!add_special_tokens) return encodings;
    std::vector<Encoding> out;
    for (size_t i = 0; i < encodings.size(); ++i) {
        const std::vector<uint32_t> zeros(encodings[i].ids.size(), 0);
        out.push_back(wrap(encodings[i], i == 0 ? &cls_ : &sep_, sep_, 0, 0, &zeros));
    }
    return out;
}

TemplatePostProcessor::TemplatePostProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair,
                                             std::map<std::string, TemplateSpecialToken> special_tokens)
    : single_(std::move(single)), pair_(std::move(pair)), special_tokens_(std::move(special_tokens)) {
    for (const auto* t : {&single_, &pair_})
        for (const auto& p : *t)
            if (!p.is_sequence && !special_tokens_.count(p.token))
                throw Error("post_processor: template uses special token \"" + p.token +
                            "\" missing from special_tokens");
}

size_t TemplatePostProcessor::added_tokens(bool is_pair) const {
    size_t n = 0;
    for (const auto& p : is_pair ? pair_ : single_)
        if (!p.is_sequence) n += special_tokens_.at(p.token).ids.size();
    return n;
}

std::vector<Encoding> TemplatePostProcessor::process(std::vector<Encoding> encodings, bool add_special_tokens) const {
    const auto& tmpl = encodings.size() == 2 ? pair_ : single_;
    std::vector<Encoding> out;
    // A sequence is moved into its last place in the template (copied only when it repeats).
    std::vector<size_t> last_use(encodings.size(), tmpl.size());
    for (size_t i = 0; i < tmpl.size(); ++i)
        if (tmpl[i].is_sequence && tmpl[i].sequence < encodings.size()) last_use[tmpl[i].sequence] = i;
    for (size_t i = 0; i < tmpl.size(); ++i) {
        const auto& p = tmpl[i];
        if (p.is_sequence) {
            if (p.sequence >= encodings.size()) throw Error("post_processor: template expects a pair of sequences");
            Encoding e = last_use[p.sequence] == i ? std::move(encodings[p.sequence]) : encodings[p.sequence];
            e.type_ids.assign(e.ids.size(), p.type_id);
            out.push_back(std::move(e));
        } else if (add_special_tokens) {
            const auto& st = special_tokens_.at(p.token);
            out.push_back(special_encoding(st.ids, st.tokens, p.type_id));
        }
    }
    return out;
}

size_t SequencePostProcessor::added_tokens(bool is_pair) const {
    size_t n = 0;
    for (const auto& p : parts_) n += p->added_tokens(is_pair);
    return n;
}

std::vector<Encoding> SequencePostProcessor::process(std::vector<Encoding> encodings, bool add_special_tokens) const {
    for (const auto& p : parts_) encodings = p->process(std::move(encodings), add_special_tokens);
    return encodings;
}

}  // namespace tfx::tok
