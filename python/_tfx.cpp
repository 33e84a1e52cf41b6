// The Python extension `tfx._tfx`: the C host API (tfx/host_api.h) with Python types. The
// transformers-shaped classes live in python/tfx/*.py on top of it.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tfx/host_api.h"

namespace py = pybind11;

namespace {

// A status other than TFX_OK raised as tfx.TfxError(code, message) (python/tfx/errors.py maps
// codes to subclasses).
void check(int32_t status, const tfx_error& error) {
    if (status == TFX_OK) return;
    static py::object raise = py::module_::import("tfx.errors").attr("raise_status");
    raise(status, std::string(error.message));
    throw py::error_already_set();
}

tfx_error fresh_error() {
    tfx_error e{};
    e.struct_size = sizeof e;
    return e;
}

tfx_sink bytes_sink(std::string& out) {
    return {&out, [](void* ctx, const void* data, size_t bytes) {
                static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), bytes);
            }};
}

// Runs a C API call (given the error to fill) without the GIL, so other Python threads run
// while a model loads or generates, then raises its error.
template <class Call>
void call_unlocked(Call&& call) {
    tfx_error e = fresh_error();
    int32_t status = TFX_OK;
    {
        py::gil_scoped_release unlocked;
        status = call(&e);
    }
    check(status, e);
}

// Open options over strings the caller keeps alive (nullopt: the engine's default).
tfx_api_open_options open_options(int32_t num_threads, const std::optional<std::string>& device,
                                  const std::optional<std::string>& quantize,
                                  const std::optional<std::string>& kv_dtype,
                                  const std::optional<std::string>& revision, bool offline,
                                  const std::string* lora = nullptr, bool merge_lora = false) {
    auto text = [](const std::optional<std::string>& v) { return v ? v->c_str() : nullptr; };
    tfx_api_open_options o{};
    o.lora = lora != nullptr && !lora->empty() ? lora->c_str() : nullptr;
    o.merge_lora = merge_lora ? 1 : 0;
    o.struct_size = sizeof o;
    o.num_threads = num_threads;
    o.device = text(device);
    o.quantize = text(quantize);
    o.kv_dtype = text(kv_dtype);
    o.revision = text(revision);
    o.offline = offline ? 1 : 0;
    return o;
}

template <class T>
std::vector<T> as_vector(const std::string& bytes) {
    std::vector<T> out(bytes.size() / sizeof(T));
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    return out;
}

// A tensor the C API handed over, offered once through the DLPack protocol (__dlpack__ gives
// the consumer a "dltensor" capsule; a capsule nobody consumed frees the tensor itself).
class DlpackTensor {
  public:
    explicit DlpackTensor(tfx_dlpack_managed_tensor* tensor) : tensor_(tensor) {}
    ~DlpackTensor() {
        if (tensor_) tensor_->deleter(tensor_);
    }
    DlpackTensor(const DlpackTensor&) = delete;
    DlpackTensor& operator=(const DlpackTensor&) = delete;

    py::capsule dlpack(const py::object& /*stream: host memory needs no synchronisation*/) {
        if (!tensor_) throw std::runtime_error("this tensor was already handed to a DLPack consumer");
        tfx_dlpack_managed_tensor* tensor = std::exchange(tensor_, nullptr);
        return py::capsule(tensor, "dltensor", [](PyObject* capsule) {
            // Still named "dltensor": no consumer took it (one renames it "used_dltensor").
            if (PyCapsule_IsValid(capsule, "dltensor")) {
                auto* t = static_cast<tfx_dlpack_managed_tensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
                t->deleter(t);
            }
        });
    }
    py::tuple device() const { return py::make_tuple(1, 0); }  // kDLCPU, device 0

  private:
    tfx_dlpack_managed_tensor* tensor_;
};

// A tokenizer: opened alone (owned) or the one a model holds (borrowed; Python keeps the
// model alive while it lives).
class Tokenizer {
  public:
    Tokenizer(const std::string& path, std::optional<std::string> revision, bool offline) {
        const tfx_api_open_options o = open_options(0, std::nullopt, std::nullopt, std::nullopt, revision, offline);
        call_unlocked([&](tfx_error* e) { return tfx_api_open_tokenizer(path.c_str(), &o, &owned_, e); });
        tokenizer_ = owned_;
    }
    explicit Tokenizer(const tfx_api_tokenizer* borrowed) : tokenizer_(borrowed) {}
    ~Tokenizer() { tfx_api_close_tokenizer(owned_); }
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const {
        std::string out;
        tfx_error e = fresh_error();
        check(tfx_api_encode(tokenizer_, text.data(), text.size(), add_special_tokens, bytes_sink(out), &e), e);
        return as_vector<int32_t>(out);
    }

    std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
        std::string out;
        tfx_error e = fresh_error();
        check(tfx_api_decode(tokenizer_, ids.data(), ids.size(), skip_special_tokens, bytes_sink(out), &e), e);
        return out;
    }

    std::string apply_chat_template(const std::string& messages_json, bool add_generation_prompt) const {
        std::string out;
        tfx_error e = fresh_error();
        check(
            tfx_api_apply_chat_template(tokenizer_, messages_json.c_str(), add_generation_prompt, bytes_sink(out), &e),
            e);
        return out;
    }

    // The id of a special token ("pad_token", ...), or None.
    std::optional<int32_t> special_token_id(const std::string& name) const {
        int32_t id = -1;
        tfx_error e = fresh_error();
        const int32_t status = tfx_api_special_token_id(tokenizer_, name.c_str(), &id, &e);
        if (status == TFX_ERR_NOT_FOUND) return std::nullopt;
        check(status, e);
        return id;
    }

  private:
    tfx_api_tokenizer* owned_ = nullptr;
    const tfx_api_tokenizer* tokenizer_ = nullptr;
};

class Model {
  public:
    Model(const std::string& path, int32_t num_threads, std::optional<std::string> device,
          std::optional<std::string> quantize, std::optional<std::string> kv_dtype, std::optional<std::string> revision,
          bool offline, const std::vector<std::string>& lora, bool merge_lora) {
        std::string lora_lines;
        for (const std::string& spec : lora) lora_lines += spec + "\n";
        const tfx_api_open_options o =
            open_options(num_threads, device, quantize, kv_dtype, revision, offline, &lora_lines, merge_lora);
        call_unlocked([&](tfx_error* e) { return tfx_api_open(path.c_str(), &o, &model_, e); });
    }
    ~Model() { tfx_api_close(model_); }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // The run-time LoRA adapters applied from now on, by name (none: the bare model).
    void set_lora(const std::vector<std::string>& names) {
        std::string lines;
        for (const std::string& name : names) lines += name + "\n";
        call_unlocked([&](tfx_error* e) { return tfx_api_set_lora(model_, lines.c_str(), e); });
    }

    py::dict info() const {
        tfx_model_info i{};
        i.struct_size = sizeof i;
        tfx_error e = fresh_error();
        check(tfx_api_info(model_, &i, &e), e);
        py::dict d;
        d["output_kind"] = i.output_kind == TFX_OUTPUT_LOGITS         ? "logits"
                           : i.output_kind == TFX_OUTPUT_HIDDEN_STATE ? "hidden_state"
                           : i.output_kind == TFX_OUTPUT_EMBEDDING    ? "embedding"
                                                                      : "class_logits";
        d["vocab_size"] = i.vocab_size;
        d["hidden_size"] = i.hidden_size;
        d["output_size"] = i.output_size;
        d["num_layers"] = i.num_layers;
        d["max_positions"] = i.max_positions;
        return d;
    }

    // Its tokenizer, or None (py::keep_alive keeps this model open while it lives).
    std::unique_ptr<Tokenizer> tokenizer() const {
        const tfx_api_tokenizer* t = tfx_api_model_tokenizer(model_);
        return t ? std::make_unique<Tokenizer>(t) : nullptr;
    }

    // The outputs as a DLPack tensor (numpy.from_dlpack / torch.from_dlpack wrap it, no copy).
    std::unique_ptr<DlpackTensor> forward(const std::vector<int32_t>& ids, bool all_positions) {
        tfx_dlpack_managed_tensor* out = nullptr;
        call_unlocked([&](tfx_error* e) {
            return tfx_api_forward_dlpack(model_, ids.data(), ids.size(), all_positions, &out, e);
        });
        return std::make_unique<DlpackTensor>(out);
    }

    // generate(): the result JSON; on_token(sequence, token) -> truthy to stop that sequence.
    std::string generate(const std::vector<std::vector<int32_t>>& prompts, const std::string& config_json,
                         const std::function<bool(size_t, int32_t)>& on_token) {
        std::vector<const int32_t*> pointers;
        std::vector<size_t> lengths;
        for (const auto& p : prompts) {
            pointers.push_back(p.data());
            lengths.push_back(p.size());
        }
        struct Callback {
            const std::function<bool(size_t, int32_t)>* on_token;
            bool failed = false;
        } callback{on_token ? &on_token : nullptr};
        auto trampoline = [](void* user, size_t sequence, int32_t token) -> int32_t {
            auto* c = static_cast<Callback*>(user);
            if (c->failed) return 1;
            py::gil_scoped_acquire locked;
            try {
                return (*c->on_token)(sequence, token) ? 1 : 0;
            } catch (py::error_already_set& e) {
                c->failed = true;  // the callback raised: stop, and re-raise after generate
                e.restore();
                return 1;
            }
        };
        std::string out;
        tfx_error e = fresh_error();
        int32_t status = TFX_OK;
        {
            py::gil_scoped_release unlocked;
            status = tfx_api_generate(model_, pointers.data(), lengths.data(), prompts.size(), config_json.c_str(),
                                      callback.on_token ? +trampoline : nullptr, &callback, bytes_sink(out), &e);
        }
        if (callback.failed) throw py::error_already_set();
        check(status, e);
        return out;
    }

  private:
    tfx_api_model* model_ = nullptr;
};

// transformers.pipeline(task, model): JSON in, JSON out (tfx_api_pipeline_run).
class Pipeline {
  public:
    Pipeline(const std::string& task, const std::string& path, int32_t num_threads, std::optional<std::string> device) {
        const tfx_api_open_options o =
            open_options(num_threads, device, std::nullopt, std::nullopt, std::nullopt, false);
        call_unlocked(
            [&](tfx_error* e) { return tfx_api_pipeline_open(task.c_str(), path.c_str(), &o, &pipeline_, e); });
    }
    ~Pipeline() { tfx_api_pipeline_close(pipeline_); }
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    std::string run(const std::string& input_json) {
        std::string out;
        call_unlocked(
            [&](tfx_error* e) { return tfx_api_pipeline_run(pipeline_, input_json.c_str(), bytes_sink(out), e); });
        return out;
    }

  private:
    tfx_api_pipeline* pipeline_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(_tfx, m) {
    m.doc() = "tfx's C host API (tfx/host_api.h) for Python; use the classes of the tfx package";
    m.attr("HOST_API_VERSION") = tfx_api_version();
    py::class_<DlpackTensor>(m, "DlpackTensor")
        .def("__dlpack__", &DlpackTensor::dlpack, py::arg("stream") = py::none())
        .def("__dlpack_device__", &DlpackTensor::device);
    py::class_<Tokenizer>(m, "Tokenizer")
        .def(py::init<const std::string&, std::optional<std::string>, bool>(), py::arg("path"),
             py::arg("revision") = py::none(), py::arg("offline") = false)
        .def("encode", &Tokenizer::encode, py::arg("text"), py::arg("add_special_tokens") = true)
        .def("decode", &Tokenizer::decode, py::arg("ids"), py::arg("skip_special_tokens") = false)
        .def("apply_chat_template", &Tokenizer::apply_chat_template, py::arg("messages_json"),
             py::arg("add_generation_prompt") = false)
        .def("special_token_id", &Tokenizer::special_token_id, py::arg("name"));
    py::class_<Pipeline>(m, "Pipeline")
        .def(py::init<const std::string&, const std::string&, int32_t, std::optional<std::string>>(), py::arg("task"),
             py::arg("path"), py::arg("num_threads") = 0, py::arg("device") = py::none())
        .def("run", &Pipeline::run, py::arg("input_json"));
    py::class_<Model>(m, "Model")
        .def(py::init<const std::string&, int32_t, std::optional<std::string>, std::optional<std::string>,
                      std::optional<std::string>, std::optional<std::string>, bool, const std::vector<std::string>&,
                      bool>(),
             py::arg("path"), py::arg("num_threads") = 0, py::arg("device") = py::none(),
             py::arg("quantize") = py::none(), py::arg("kv_dtype") = py::none(), py::arg("revision") = py::none(),
             py::arg("offline") = false, py::arg("lora") = std::vector<std::string>{}, py::arg("merge_lora") = false)
        .def("set_lora", &Model::set_lora, py::arg("names"))
        .def("info", &Model::info)
        .def("tokenizer", &Model::tokenizer, py::keep_alive<0, 1>())
        .def("forward", &Model::forward, py::arg("ids"), py::arg("all_positions") = false)
        .def("generate", &Model::generate, py::arg("prompts"), py::arg("config_json"), py::arg("on_token") = nullptr);
}
