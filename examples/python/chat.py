#!/usr/bin/env python3
"""A streaming chat loop over a model's chat template with tfx's Python package.
usage: PYTHONPATH=build/python python3 examples/python/chat.py MODEL_DIR [--max-new-tokens 256]
Each reply streams as it is generated; the conversation is kept; an empty line or Ctrl-D ends."""
import argparse
import threading

import tfx

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--max-new-tokens", type=int, default=256)
args = parser.parse_args()

tokenizer = tfx.AutoTokenizer.from_pretrained(args.model)
model = tfx.AutoModelForCausalLM.from_pretrained(args.model)
messages = []
while True:
    try:
        line = input("> ")
    except EOFError:
        break
    if not line.strip():
        break
    messages.append({"role": "user", "content": line})
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    streamer = tfx.TextIteratorStreamer(tokenizer, skip_prompt=True)
    thread = threading.Thread(target=model.generate, args=(ids,),
                              kwargs={"max_new_tokens": args.max_new_tokens, "streamer": streamer})
    thread.start()
    reply = ""
    for text in streamer:
        print(text, end="", flush=True)
        reply += text
    thread.join()
    print()
    messages.append({"role": "assistant", "content": reply})
