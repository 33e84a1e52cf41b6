#!/usr/bin/env python3
"""Load driver for `tfx serve` (standard library only): streams completions at several
concurrency levels over loopback and reports aggregate generated tokens/s, time-to-first-token
p50/p99 and errors per level, plus the server's resident memory before and after when --pid is
given. Each stream asks for --max-tokens tokens with ignore_eos, so every request does the same
work; throughput at N streams is compared with 1 stream in the same run.

  scripts/bench-serve.py --url http://127.0.0.1:8000 --model NAME [-c 1,4,8,16,32] [-n 64] [--pid PID]
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROMPTS = ["Once upon a time", "The little dog ran to the park and", "Lily and Ben went to",
           "One day, a big red ball", "Tom was sad because his friend"]


def stream_one(host, port, model, prompt, max_tokens):
    """One streamed completion: (time to first token, tokens, seconds) or raises."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first, tokens = None, 0
    for line in response:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        elif first is None:
            first = time.perf_counter() - start
    conn.close()
    return first, tokens, time.perf_counter() - start


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
    a = p.parse_args()
    url = urllib.parse.urlparse(a.url)
    if a.pid:
        print(f"server RSS at start: {rss_kib(a.pid) / 1024:.1f} MiB")
    base = None
    for c in [int(x) for x in a.concurrency.split(",")]:
        results, errors, lock, next_index = [], [], threading.Lock(), [0]

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

        start = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        tokens = sum(r[1] for r in results)
        ttfts = sorted(r[0] for r in results if r[0] is not None)
        rate = tokens / wall
        base = base or rate
        p99 = ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))] if ttfts else float("nan")
        print(f"concurrency {c:3d}: {rate:8.1f} generated tok/s ({rate / base:4.2f}x 1 stream), "
              f"TTFT p50 {statistics.median(ttfts) * 1000 if ttfts else float('nan'):7.1f} ms, p99 {p99 * 1000:7.1f} ms, "
              f"{len(results)} ok, {len(errors)} errors" + (f" (first: {errors[0]})" if errors else ""))
    if a.pid:
        print(f"server RSS at end: {rss_kib(a.pid) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
