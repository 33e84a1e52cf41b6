#include "core/plugin_guard.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tfx::plugin_guard {
namespace {

constexpr int kMaxLibraries = 256;
constexpr int kMaxDepth = 16;
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

struct Library {
    uintptr_t begin = 0, end = 0;
    char name[128] = {};
    char path[1024] = {};
};
// Views into strings that outlive the scope (the plugin's record, a literal): a marker is
// pushed around every host call into a plugin, so it must cost no copies.
struct Marker {
    std::string_view name, path, phase;
};

// Plain arrays filled before the count is published: the handlers only read them.
Library g_libraries[kMaxLibraries];
std::atomic<int> g_library_count{0};
// Per thread: the handlers run on the thread that faulted or called exit().
thread_local Marker g_markers[kMaxDepth];
thread_local int g_depth = 0;
std::atomic<bool> g_probe_child{false};
struct sigaction g_previous[NSIG];
alignas(16) char g_alt_stack[64 * 1024];

void copy(char* out, std::size_t size, std::string_view in) {
    const std::size_t n = in.size() < size - 1 ? in.size() : size - 1;
    std::memcpy(out, in.data(), n);
    out[n] = '\0';
}

// A message assembled without allocating, written with one write(2).
struct Message {
    char text[4096];
    std::size_t used = 0;
    Message& operator<<(const char* s) {
        while (*s != '\0' && used + 1 < sizeof text) text[used++] = *s++;
        return *this;
    }
    Message& operator<<(std::string_view s) {
        for (char c : s) {
            if (used + 1 >= sizeof text) break;
            text[used++] = c;
        }
        return *this;
    }
    Message& operator<<(long value) {
        char digits[24];
        int n = 0;
        bool negative = value < 0;
        unsigned long v = negative ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0 && n < 22);
        if (negative) digits[n++] = '-';
        while (n > 0 && used + 1 < sizeof text) text[used++] = digits[--n];
        return *this;
    }
    void emit() const {
        std::size_t off = 0;
        while (off < used) {
            ssize_t n = ::write(STDERR_FILENO, text + off, used - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
    }
};

const char* signal_description(int sig) {
    switch (sig) {
        case SIGSEGV:
            return "Segmentation fault";
        case SIGBUS:
            return "Bus error";
        case SIGILL:
            return "Illegal instruction";
        case SIGFPE:
            return "Floating point exception";
        case SIGABRT:
            return "Aborted";
        default:
            return "fatal signal";
    }
}

const Library* library_at(uintptr_t address) {
    const int count = g_library_count.load(std::memory_order_acquire);
    for (int i = 0; i < count; ++i) {
        if (address >= g_libraries[i].begin && address < g_libraries[i].end) return &g_libraries[i];
    }
    return nullptr;
}

// The innermost plugin whose code is on this thread's stack (first the faulting address).
const Library* library_on_stack(uintptr_t pc, uintptr_t sp) {
    if (const Library* lib = library_at(pc)) return lib;
    // A call through a NULL or wild pointer: the return address is on top of the stack.
    if (sp != 0) {
        if (const Library* lib = library_at(*reinterpret_cast<const uintptr_t*>(sp))) return lib;
    }
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    for (int i = 0; i < n; ++i) {
        if (const Library* lib = library_at(reinterpret_cast<uintptr_t>(frames[i]))) return lib;
    }
    return nullptr;
}

const Marker* current_marker() {
    const int depth = g_depth;
    return depth > 0 && depth <= kMaxDepth ? &g_markers[depth - 1] : nullptr;
}

// "plugin NAME (PATH)" and what it was doing; false when no plugin is involved.
bool describe(Message& m, const char* what, const Library* lib) {
    const Marker* marker = current_marker();
    if (marker == nullptr && lib == nullptr) return false;
    if (marker != nullptr) {
        m << "tfx: plugin " << marker->name << " (" << marker->path << ") " << what << " during " << marker->phase;
        if (lib != nullptr && marker->path != lib->path) {
            m << ", in the code of plugin " << lib->name << " (" << lib->path << ")";
        }
    } else {
        m << "tfx: plugin " << lib->name << " (" << lib->path << ") " << what << " in its own code";
    }
    return true;
}

void on_fatal_signal(int sig, siginfo_t*, void* context) {
    if (!g_probe_child.load()) {
        uintptr_t pc = 0, sp = 0;
#if defined(__x86_64__)
        const auto* uc = static_cast<const ucontext_t*>(context);
        pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
        sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
        const auto* uc = static_cast<const ucontext_t*>(context);
        pc = static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
        (void)context;
#endif
        Message m;
        char what[96];
        Message w;
        w << "crashed (signal " << static_cast<long>(sig) << ": " << signal_description(sig) << ")";
        copy(what, sizeof what, std::string_view(w.text, w.used));
        if (describe(m, what, library_on_stack(pc, sp))) {
            m << "; the process cannot continue (run `tfx-plugins verify` to check plugins in isolation)\n";
        } else {
            m << "tfx: " << what << " outside plugin code\n";
        }
        m.emit();
    }
    // Die as the process would have without us: the previous action, the same signal.
    struct sigaction previous = g_previous[sig];
    if (previous.sa_handler == SIG_IGN) previous.sa_handler = SIG_DFL;
    ::sigaction(sig, &previous, nullptr);
    ::raise(sig);
}

void on_exit_hook() {
    if (g_probe_child.load()) return;
    // Who called exit(): the first frame outside this library and the C library (exit itself,
    // its handlers). A plugin there called it; main() or a signal handler of the host did not.
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    Dl_info self{}, libc{};
    ::dladdr(reinterpret_cast<void*>(&on_exit_hook), &self);
    ::dladdr(reinterpret_cast<void*>(&std::exit), &libc);
    const Library* caller = nullptr;
    for (int i = 0; i < n; ++i) {
        Dl_info info{};
        if (::dladdr(frames[i], &info) != 0 && (info.dli_fbase == self.dli_fbase || info.dli_fbase == libc.dli_fbase)) {
            continue;
        }
        caller = library_at(reinterpret_cast<uintptr_t>(frames[i]));
        break;
    }
    Message m;
    if (describe(m, "called exit()", caller)) {
        m << "; the run ends here\n";
        m.emit();
    }
}

}  // namespace

void install() {
    static std::once_flag once;
    std::call_once(once, [] {
        void* warm[4];
        ::backtrace(warm, 4);  // loads the unwinder now, not inside a signal handler
        stack_t current{};
        if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_ONSTACK) == 0 && current.ss_sp == nullptr) {
            stack_t alt{};
            alt.ss_sp = g_alt_stack;
            alt.ss_size = sizeof g_alt_stack;
            ::sigaltstack(&alt, nullptr);
        }
        for (int sig : kSignals) {
            struct sigaction action {};
            action.sa_sigaction = &on_fatal_signal;
            action.sa_flags = SA_SIGINFO | SA_ONSTACK;
            sigemptyset(&action.sa_mask);
            ::sigaction(sig, &action, &g_previous[sig]);
        }
        std::atexit(&on_exit_hook);
    });
}

void register_library(void* handle, std::string_view name, const std::filesystem::path& path) {
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    link_map* map = nullptr;
    if (handle == nullptr || ::dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return;
    const int index = g_library_count.load();
    if (index >= kMaxLibraries) return;
    Library& lib = g_libraries[index];
    struct Search {
        const link_map* map;
        uintptr_t begin, end;
    } search{map, UINTPTR_MAX, 0};
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            auto* s = static_cast<Search*>(data);
            if (info->dlpi_addr != s->map->l_addr || info->dlpi_name == nullptr ||
                std::strcmp(info->dlpi_name, s->map->l_name) != 0) {
                return 0;
            }
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_LOAD) continue;
                const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
                if (begin < s->begin) s->begin = begin;
                if (begin + ph.p_memsz > s->end) s->end = begin + ph.p_memsz;
            }
            return 1;
        },
        &search);
    if (search.end <= search.begin) return;
    for (int i = 0; i < index; ++i) {
        if (g_libraries[i].begin == search.begin) return;  // already known
    }
    lib.begin = search.begin;
    lib.end = search.end;
    copy(lib.name, sizeof lib.name, name);
    copy(lib.path, sizeof lib.path, path.string());
    g_library_count.store(index + 1, std::memory_order_release);
}

void set_probe_child() {
    g_probe_child.store(true);
}

bool is_probe_child() {
    return g_probe_child.load();
}

CallScope::CallScope(std::string_view name, const std::filesystem::path& path, std::string_view phase) noexcept {
    if (g_depth >= kMaxDepth) return;
    g_markers[g_depth] = Marker{name, path.native(), phase};
    ++g_depth;
    pushed_ = true;
}

CallScope::~CallScope() {
    if (pushed_) --g_depth;
}

}  // namespace tfx::plugin_guard
