#!/usr/bin/env python3
"""The official OpenAI Python client (tools/pydeps/openai.in: openai on httpx) against the engine.

  openai_client.py tcp PORT MODE | unix PATH MODE
  MODE calls      models.list, one chat completion, one streamed; prints "models …", "reply …",
                  then "delta SECONDS TEXT" for each streamed delta as it arrives
  MODE bench N    N sequential models.list calls on the client's keep-alive connection; prints
                  "p50_ms p95_ms"
"""
import sys
import time

import httpx2
import openai


def main():
    kind, where, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if kind == "unix":
        http = openai.DefaultHttpxClient(transport=httpx2.HTTPTransport(uds=where))
        base = "http://localhost/v1"
    else:
        http = openai.DefaultHttpxClient()
        base = f"http://127.0.0.1:{where}/v1"
    client = openai.OpenAI(api_key="test-token", base_url=base, http_client=http, max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "hi"}]
    if mode == "calls":
        print("models", ",".join(m.id for m in client.models.list()), flush=True)
        reply = client.chat.completions.create(model="m", messages=messages)
        print("reply", reply.choices[0].message.content, reply.usage.total_tokens, flush=True)
        start = time.monotonic()
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                print(f"delta {time.monotonic() - start:.3f} {chunk.choices[0].delta.content}", flush=True)
    elif mode == "bench":
        times = []
        for _ in range(int(sys.argv[4])):
            t = time.perf_counter()
            client.models.list()
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{times[len(times) // 2]:.3f} {times[int(len(times) * 0.95)]:.3f}")
    client.close()


if __name__ == "__main__":
    main()
