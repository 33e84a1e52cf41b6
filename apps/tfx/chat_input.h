// Terminal input for `tfx chat`: Ctrl-C as a request (not a kill) and line reading that
// Ctrl-C can wake. While a ChatInterrupts is alive, SIGINT only sets a flag and wakes
// LineReader; the chat loop polls the flag to stop a reply (StopCondition) and to tell
// "Ctrl-C at the prompt" (quit) from a line or end of input.
#pragma once

#include <string>

namespace tfx::cli {

// One at a time: the handler's state is process-wide.
class ChatInterrupts {
  public:
    ChatInterrupts();   // installs the SIGINT handler (SA_RESTART, so output is never cut short)
    ~ChatInterrupts();  // restores the previous handler
    ChatInterrupts(const ChatInterrupts&) = delete;
    ChatInterrupts& operator=(const ChatInterrupts&) = delete;

    bool pending() const;  // a SIGINT arrived since the last clear()
    void clear();
    int wake_fd() const;  // readable once a SIGINT arrived (drained by clear())
};

enum class LineStatus { kLine, kEnd, kInterrupted };

// Reads lines from a file descriptor itself (not std::cin), so that a SIGINT interrupts the
// wait: the handler is installed with SA_RESTART, which would otherwise resume read().
class LineReader {
  public:
    LineReader(int fd, const ChatInterrupts& interrupts) : fd_(fd), interrupts_(interrupts) {}
    // One line without its "\n" (or "\r\n"); the last line may lack the newline. kEnd at end
    // of input, kInterrupted when SIGINT arrived first. Throws on a read error.
    LineStatus read(std::string& line);

  private:
    int fd_;
    const ChatInterrupts& interrupts_;
    std::string buffer_;
    bool eof_ = false;
};

}  // namespace tfx::cli
