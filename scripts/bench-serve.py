#!/usr/bin/env python3
"""Load driver for `tfx serve` (standard library only): streams completions at several
concurrency levels over loopback and reports aggregate generated tokens/s, time-to-first-token
p50/p99 and errors per level, plus the server's resident memory before and after when --pid is
given. Each stream asks for --max-tokens tokens with ignore_eos, so every request does the same
work; throughput at N streams is compared with 1 stream in the same run.

With --rounds R each level runs R times, the RSS printed after each (memory must stay flat once
the KV pools and arenas reached their peak). With --long-prompt N, one request with an N-token
prompt joins each level once its streams run: its TTFT, and the largest gap between two tokens of
the running streams (chunked prefill must keep them flowing), are reported beside the level's
inter-token latency.

  scripts/bench-serve.py --url http://127.0.0.1:8000 --model NAME [-c 1,4,8,16,32] [-n 64] [--pid PID]
                         [--rounds R] [--long-prompt N]
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse

PROMPTS = ["Once upon a time", "The little dog ran to the park and", "Lily and Ben went to",
           "One day, a big red ball", "Tom was sad because his friend"]


def stream_one(host, port, model, prompt, max_tokens):
    """One streamed completion: (time to first token, tokens, seconds, gaps between chunks) or raises."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first, tokens, last, gaps = None, 0, None, []
    for line in response:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        now = time.perf_counter()
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
            continue
        if first is None:
            first = now - start
        else:
            gaps.append(now - last)
        last = now
    conn.close()
    return first, tokens, time.perf_counter() - start, gaps


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--model", required=True)
    p.add_argument("-c", "--concurrency", default="1,4,8,16,32")
    p.add_argument("-n", "--requests", type=int, default=64, help="requests per concurrency level")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--pid", type=int, help="the server's pid, for its resident memory")
    p.add_argument("--rounds", type=int, default=1, help="runs of each level (RSS printed after each)")
    p.add_argument("--long-prompt", type=int, default=0, help="tokens of one long prompt sent into each level")
    a = p.parse_args()
    # About one token per word for the llama2 and TinyStories tokenizers; each level's prompt
    # begins with its own words, so none is served from the prefix cache.
    words = ["the", "dog", "ran", "a", "big", "red", "ball", "and", "sun", "tree", "happy", "cat"]

    def long_prompt(level):
        rng = random.Random(level)
        return " ".join(rng.choice(words) for _ in range(max(0, a.long_prompt - 1)))

    url = urllib.parse.urlparse(a.url)
    if a.pid:
        print(f"server RSS at start: {rss_kib(a.pid) / 1024:.1f} MiB")
    base = None
    levels = [int(x) for x in a.concurrency.split(",") for _ in range(a.rounds)]
    long_result_levels = []
    for c in levels:
        long_result_levels.append(c)
        results, errors, lock, next_index, long_result = [], [], threading.Lock(), [0], []

        def worker():
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= a.requests:
                    return
                try:
                    r = stream_one(url.hostname, url.port, a.model, PROMPTS[i % len(PROMPTS)], a.max_tokens)
                    with lock:
                        results.append(r)
                except Exception as e:  # counted, not fatal: the report says how many
                    with lock:
                        errors.append(str(e))

        def long_one():
            time.sleep(0.5)  # the level's streams are running by now
            try:
                long_result.append(stream_one(url.hostname, url.port, a.model, long_prompt(len(long_result_levels)), 4))
            except Exception as e:
                with lock:
                    errors.append("long prompt: " + str(e))

        start = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(c)]
        if a.long_prompt:
            threads.append(threading.Thread(target=long_one))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        tokens = sum(r[1] for r in results)
        ttfts = sorted(r[0] for r in results if r[0] is not None)
        gaps = [g for r in results for g in r[3]]
        rate = tokens / wall
        base = base or rate
        line = (f"concurrency {c:3d}: {rate:8.1f} generated tok/s ({rate / base:4.2f}x 1 stream), "
                f"TTFT p50 {statistics.median(ttfts) * 1000 if ttfts else float('nan'):7.1f} ms, "
                f"p99 {percentile(ttfts, 0.99) * 1000:7.1f} ms, ITL p50 {percentile(gaps, 0.5) * 1000:6.1f} ms, "
                f"p99 {percentile(gaps, 0.99) * 1000:6.1f} ms, max {max(gaps, default=float('nan')) * 1000:6.1f} ms, "
                f"{len(results)} ok, {len(errors)} errors" + (f" (first: {errors[0]})" if errors else ""))
        if long_result:
            line += f"; {a.long_prompt}-token prompt TTFT {long_result[0][0] * 1000:.1f} ms"
        if a.pid:
            line += f"; RSS {rss_kib(a.pid) / 1024:.1f} MiB"
        print(line, flush=True)
    if a.pid:
        print(f"server RSS at end: {rss_kib(a.pid) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
