#!/usr/bin/env python3
"""Drives the real `tfx chat` through a pseudo-terminal, one scenario per run.

usage: chat_pty_test.py TFX_BINARY SCENARIO   (needs $TFX_TEST_DATA; exit 77 without it)

The model is $TFX_TEST_DATA/models/tinystories-656k copied into a temporary folder with a
chat template added to tokenizer_config.json (the template raises an error on a message that
contains "boom") and, per scenario, a different max_position_embeddings in config.json.
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import sys
import tempfile
import time

TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if 'boom' in message['content'] -%}{{ raise_exception('the template refuses boom') }}{%- endif -%}"
    "{%- if loop.first -%}{{ bos_token }}{%- endif -%}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}assistant:{%- endif -%}"
)
PROMPT = b"> "


class Failure(Exception):
    pass


def make_model(tmp, max_positions):
    source = os.path.join(os.environ["TFX_TEST_DATA"], "models", "tinystories-656k")
    model = os.path.join(tmp, "model")
    os.mkdir(model)
    for name in os.listdir(source):
        if name != "SOURCE.md":
            shutil.copyfile(os.path.join(source, name), os.path.join(model, name))
    with open(os.path.join(model, "tokenizer_config.json")) as f:
        settings = json.load(f)
    settings["chat_template"] = TEMPLATE
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump(settings, f)
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    config["max_position_embeddings"] = max_positions
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump(config, f)
    return model


class Chat:
    """`tfx chat` on a pty (its controlling terminal, so ^C from the pty raises SIGINT)."""

    def __init__(self, tfx, args, cwd):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.chdir(cwd)
                os.environ["TFX_LOG_LEVEL"] = "warn"
                os.execv(tfx, [tfx, "chat"] + args)
            finally:
                os._exit(127)
        self.output = b""  # everything read so far
        self.mark = 0  # where the current step's output starts
        self.status = None

    def _read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise EOFError
        self.output += data
        return True

    def expect(self, pattern, timeout=60, what=None):
        """Waits until the output since the mark matches `pattern` (bytes regex); returns the match."""
        deadline = time.time() + timeout
        regex = re.compile(pattern, re.S)
        while True:
            match = regex.search(self.output, self.mark)
            if match:
                self.mark = match.end()
                return match
            left = deadline - time.time()
            if left <= 0:
                raise Failure("timed out waiting for %s; output since the last step:\n%r"
                              % (what or pattern, self.output[self.mark:][-3000:]))
            try:
                self._read(left)
            except EOFError:
                raise Failure("tfx ended while waiting for %s (%s); output since the last step:\n%r"
                              % (what or pattern, self.wait(5), self.output[self.mark:][-3000:]))

    def prompt(self, timeout=60):
        return self.expect(re.escape(PROMPT) + b"$", timeout, "the prompt '> '")

    def send(self, data):
        os.write(self.fd, data)

    def say(self, line, timeout=60):
        """Sends a line and waits for the next prompt; returns what came in between."""
        start = len(self.output)
        self.send(line + b"\r")
        self.prompt(timeout)
        return self.output[start:self.mark - len(PROMPT)]

    def wait(self, timeout=30):
        """Exit description: 'exit N' or 'signal N' (drains the pty meanwhile)."""
        if self.status is not None:
            return self.status
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                if os.WIFSIGNALED(status):
                    self.status = "signal %d" % os.WTERMSIG(status)
                else:
                    self.status = "exit %d" % os.WEXITSTATUS(status)
                return self.status
            try:
                self._read(0.05)
            except EOFError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.status = "hung (killed)"
        return self.status

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)
        os.close(self.fd)


def check(condition, message, chat=None):
    if not condition:
        tail = ("\noutput:\n%r" % chat.output[-3000:]) if chat else ""
        raise Failure(message + tail)


def saved(chat, tmp, name):
    path = os.path.join(tmp, name)
    out = chat.say(b"/save " + path.encode())
    check(os.path.exists(path), "/save wrote no file: %r" % out, chat)
    with open(path) as f:
        return json.load(f)


def exits_cleanly(chat, key):
    """Sends ^C or ^D at an empty prompt; the program must end with status 0."""
    chat.send(key)
    status = chat.wait(30)
    check(status == "exit 0", "%r at the prompt: expected exit 0, got %s" % (key, status), chat)
    check(b"error" not in chat.output[chat.mark:], "error output on leaving", chat)


# Scenarios --------------------------------------------------------------------------------

def scenario_interrupt(tfx, tmp):
    # A reply that would run for minutes (a huge context, eos ignored), stopped with ^C.
    model = make_model(tmp, 200000)
    chat = Chat(tfx, ["--model", model, "--greedy", "--ignore-eos", "--max-new-tokens", "150000"], tmp)
    try:
        chat.prompt()
        chat.send(b"Tell me a story\r")
        chat.expect(rb"\w+[^\n]{200}", 60, "the reply to stream")
        chat.send(b"\x03")
        chat.prompt(60)
        check(b"reply stopped" in chat.output, "no notice that the reply stopped", chat)
        # The next turn works (and can be stopped too).
        chat.send(b"And then?\r")
        chat.expect(rb"\w+[^\n]{100}", 60, "the second reply to stream")
        chat.send(b"\x03")
        chat.prompt(60)
        history = saved(chat, tmp, "history.json")
        roles = [m["role"] for m in history]
        check(roles == ["user", "assistant", "user", "assistant"], "history roles: %r" % roles, chat)
        check(history[0]["content"] == "Tell me a story" and history[2]["content"] == "And then?",
              "user messages: %r" % [history[0], history[2]], chat)
        # The partial replies are kept, as llama.cpp's conversation mode keeps them.
        check(len(history[1]["content"]) >= 200 and len(history[3]["content"]) >= 100,
              "partial replies not kept: %r" % [len(history[1]["content"]), len(history[3]["content"])], chat)
        exits_cleanly(chat, b"\x03")
    finally:
        chat.close()


def scenario_overflow(tfx, tmp):
    # 512 positions; 200 new tokens per reply and long messages fill the context in a few turns.
    model = make_model(tmp, 512)
    chat = Chat(tfx, ["--model", model, "--greedy", "--ignore-eos", "--max-new-tokens", "200",
                      "--system", "You tell short stories."], tmp)
    try:
        chat.prompt()
        words = "the little dog ran to the park and played with a red ball "
        notices = 0
        for turn in range(6):
            out = chat.say(("turn %d: " % turn + words * 6).encode(), 120)
            notices += len(re.findall(rb"context full[^\n]*dropped", out))
            check(b"error" not in out, "turn %d failed: %r" % (turn, out), chat)
        check(notices >= 1, "no notice that the oldest turns were dropped", chat)
        notice = re.search(rb"context full[^\r\n]*", chat.output).group(0)
        check(b"system message stays" in notice, "notice does not mention the system message: %r" % notice, chat)
        history = saved(chat, tmp, "history.json")
        check(history[0] == {"role": "system", "content": "You tell short stories."},
              "system message lost: %r" % history[:1], chat)
        check(history[1]["role"] == "user" and not history[1]["content"].startswith("turn 0:"),
              "the oldest turn was not dropped: %r" % history[1:2], chat)
        check(history[-2]["content"].startswith("turn 5:") and history[-1]["role"] == "assistant",
              "the newest turn is missing: %r" % history[-2:], chat)
        # A message too long for the context on its own is refused; the conversation goes on.
        out = chat.say(("too long " + words * 60).encode(), 120)
        check(b"too long" in out and b"not sent" in out, "no message for an over-long line: %r" % out, chat)
        after = saved(chat, tmp, "after.json")
        check(after == history, "an over-long message changed the history", chat)
        out = chat.say(b"Once upon a time", 120)
        check(b"error" not in out and len(out.strip()) > len(b"Once upon a time"), "no reply after: %r" % out, chat)
        exits_cleanly(chat, b"\x04")
    finally:
        chat.close()


def scenario_bad_utf8(tfx, tmp):
    model = make_model(tmp, 512)
    chat = Chat(tfx, ["--model", model, "--greedy", "--max-new-tokens", "8"], tmp)
    try:
        chat.prompt()
        chat.say(b"Hello there")
        out = chat.say(b"caf\xe9 \xff\xfe ok")
        check(b"not valid UTF-8" in out, "no message for a non-UTF-8 line: %r" % out, chat)
        out = chat.say(b"Once upon a time")
        check(b"error" not in out, "the next turn failed: %r" % out, chat)
        history = saved(chat, tmp, "history.json")
        check([m["content"] for m in history if m["role"] == "user"] == ["Hello there", "Once upon a time"],
              "history: %r" % history, chat)
        exits_cleanly(chat, b"\x04")
    finally:
        chat.close()


def scenario_template_error(tfx, tmp):
    model = make_model(tmp, 512)
    chat = Chat(tfx, ["--model", model, "--greedy", "--max-new-tokens", "8"], tmp)
    try:
        chat.prompt()
        chat.say(b"Hello there")
        out = chat.say(b"this goes boom")
        check(b"the template refuses boom" in out and b"not sent" in out,
              "no template error message: %r" % out, chat)
        out = chat.say(b"Once upon a time")
        check(b"error" not in out, "the next turn failed: %r" % out, chat)
        history = saved(chat, tmp, "history.json")
        check([m["content"] for m in history if m["role"] == "user"] == ["Hello there", "Once upon a time"],
              "history: %r" % history, chat)
        check([m["role"] for m in history] == ["user", "assistant", "user", "assistant"], "roles: %r" % history, chat)
        exits_cleanly(chat, b"\x04")
    finally:
        chat.close()


def scenario_save_load(tfx, tmp):
    model = make_model(tmp, 512)
    chat = Chat(tfx, ["--model", model, "--greedy", "--max-new-tokens", "8", "--system", "Be kind."], tmp)
    try:
        chat.prompt()
        chat.say(b"Hello there")
        first = saved(chat, tmp, "first.json")
        check([m["role"] for m in first] == ["system", "user", "assistant"], "saved: %r" % first, chat)
        out = chat.say(b"/reset")
        check(b"cleared" in out, "no /reset notice: %r" % out, chat)
        check(saved(chat, tmp, "reset.json") == first[:1], "/reset did not keep only the system message", chat)
        out = chat.say(b"/load " + os.path.join(tmp, "first.json").encode())
        check(b"loaded 3 messages" in out, "no /load notice: %r" % out, chat)
        check(saved(chat, tmp, "again.json") == first, "/load did not restore the conversation", chat)
        # Bad files: each refused with the reason, the conversation unchanged.
        bad = {
            "missing.json": None,
            "notjson.json": "{not json",
            "object.json": '{"role": "user", "content": "hi"}',
            "nocontent.json": '[{"role": "user"}]',
            "badrole.json": '[{"role": "robot", "content": "hi"}]',
            "numcontent.json": '[{"role": "user", "content": 3}]',
            "boom.json": '[{"role": "user", "content": "boom"}]',
        }
        reasons = {
            "missing.json": b"cannot read",
            "notjson.json": b"not valid JSON",
            "object.json": b"expected a JSON array",
            "nocontent.json": b"message 0",
            "badrole.json": b"robot",
            "numcontent.json": b"\"content\" must be a string",
            "boom.json": b"the chat template rejects",
        }
        for name, text in bad.items():
            path = os.path.join(tmp, name)
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)
            out = chat.say(b"/load " + path.encode())
            check(reasons[name] in out and b"unchanged" in out, "/load %s: %r" % (name, out), chat)
        check(saved(chat, tmp, "final.json") == first, "a bad /load changed the conversation", chat)
        out = chat.say(b"/save " + os.path.join(tmp, "no", "such", "dir.json").encode())
        check(b"cannot write" in out, "/save to a missing folder: %r" % out, chat)
        out = chat.say(b"/frobnicate")
        check(b"unknown command" in out, "unknown command: %r" % out, chat)
        out = chat.say(b"Once upon a time")
        check(b"error" not in out, "the next turn failed: %r" % out, chat)
        exits_cleanly(chat, b"\x04")
    finally:
        chat.close()


def scenario_stop_strings(tfx, tmp):
    # The model's generation_config.json stop_strings end a reply at the token that completes one.
    model = make_model(tmp, 512)
    replies = []
    for stop in (None, "SET"):
        if stop:
            full = replies[0]
            stop = full[len(full) // 3: len(full) // 3 + 6]
            with open(os.path.join(model, "generation_config.json")) as f:
                config = json.load(f)
            config["stop_strings"] = [stop]
            with open(os.path.join(model, "generation_config.json"), "w") as f:
                json.dump(config, f)
        chat = Chat(tfx, ["--model", model, "--greedy", "--max-new-tokens", "30"], tmp)
        try:
            chat.prompt()
            chat.say(b"Tell me a story")
            replies.append(saved(chat, tmp, "stop%d.json" % len(replies))[-1]["content"])
            exits_cleanly(chat, b"\x04")
        finally:
            chat.close()
    full, cut = replies
    check(len(cut) < len(full) and full.startswith(cut) and stop in cut,
          "stop string %r: reply %r (without it: %r)" % (stop, cut, full))


def scenario_exit(tfx, tmp):
    model = make_model(tmp, 512)
    for key in (b"\x03", b"\x04"):
        chat = Chat(tfx, ["--model", model, "--greedy", "--max-new-tokens", "8"], tmp)
        try:
            chat.prompt()
            out = chat.say(b"Hello there")
            check(b"error" not in out, "the turn failed: %r" % out, chat)
            exits_cleanly(chat, key)
        finally:
            chat.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tfx, scenario = sys.argv[1], sys.argv[2]
    data = os.environ.get("TFX_TEST_DATA", "")
    if not data or not os.path.isdir(os.path.join(data, "models", "tinystories-656k")):
        print("skipped: TFX_TEST_DATA does not point at the shared data with models/tinystories-656k")
        return 77
    run = globals().get("scenario_" + scenario)
    if run is None:
        print("unknown scenario " + scenario)
        return 2
    with tempfile.TemporaryDirectory(prefix="tfx-chat-") as tmp:
        try:
            run(os.path.abspath(tfx), tmp)
        except Failure as e:
            print("FAIL %s: %s" % (scenario, e))
            return 1
    print("ok " + scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
