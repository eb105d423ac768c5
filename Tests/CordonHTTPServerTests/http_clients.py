#!/usr/bin/env python3
"""Clients for HTTPServerTests, on Python's http.client (the stdlib's HTTP/1.1 client: one
connection, keep-alive, Content-Length bodies).

  http_clients.py keepalive PORT N    N POSTs of a small JSON body on one connection; prints one
                                      line per response: status, then the body
  http_clients.py sse PORT            one streamed response; prints each line as it arrives,
                                      flushed, with the seconds since the request was sent
  http_clients.py bench PORT N        N sequential small GETs on one connection; prints
                                      "p50_ms p95_ms" of the round trips
"""
import http.client
import json
import sys
import time


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if mode == "keepalive":
        for i in range(int(sys.argv[3])):
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}]})
            conn.request("POST", "/v1/chat/completions", body=body,
                         headers={"Content-Type": "application/json", "Authorization": "Bearer t"})
            r = conn.getresponse()
            print(r.status, r.read().decode())
    elif mode == "sse":
        start = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body='{"stream":true}', headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        print("status", r.status, r.getheader("Content-Type"), flush=True)
        while True:
            line = r.readline()
            if not line:
                break
            print(f"{time.monotonic() - start:.3f}", line.decode().rstrip("\n"), flush=True)
    elif mode == "bench":
        times = []
        for _ in range(int(sys.argv[3])):
            t = time.perf_counter()
            conn.request("GET", "/v1/models")
            r = conn.getresponse()
            r.read()
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{times[len(times) // 2]:.3f} {times[int(len(times) * 0.95)]:.3f}")
    conn.close()


if __name__ == "__main__":
    main()
