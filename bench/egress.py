#!/usr/bin/env python3
"""bench/egress.sh's server and client.

serve ADDR FILE: an HTTP/1.1 server on ADDR (a free port, printed) answering GET /small with
  two bytes and GET /bulk with FILE (sendfile), one request per connection.
client ADDR|NAME PORT NAME CONNECTIONS: resolves the first argument once, then times
  CONNECTIONS connections (connect, send a request for /small with Host NAME, read the whole
  reply), then one /bulk download; prints JSON: setup times (ms) and throughput (MB/s).
"""
import json, os, socket, sys, threading, time


def serve(addr, path):
    size = os.path.getsize(path)
    listener = socket.create_server((addr, 0), backlog=512)
    print(listener.getsockname()[1], flush=True)

    def handle(conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            if head.startswith(b"GET /bulk"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
                with open(path, "rb") as f:
                    conn.sendfile(f)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def fetch(address, port, name, what, buf):
    c = socket.create_connection((address, port))
    c.sendall(b"GET /%s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (what.encode(), name.encode(), port))
    total = 0
    while True:
        n = c.recv_into(buf)
        if n == 0:
            break
        total += n
    c.close()
    return total


def client(target, port, name, count):
    port, count = int(port), int(count)
    start = time.perf_counter()
    address = socket.getaddrinfo(target, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    lookup = (time.perf_counter() - start) * 1e3
    buf = bytearray(1 << 20)
    setups = []
    for _ in range(count):
        t = time.perf_counter()
        if fetch(address, port, name, "small", buf) < 2:
            sys.exit("short reply")
        setups.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    size = fetch(address, port, name, "bulk", buf)
    seconds = time.perf_counter() - t
    print(json.dumps({"lookup_ms": lookup, "setup_ms": setups, "bulk_bytes": size, "bulk_MBps": size / seconds / 1e6}))


if __name__ == "__main__":
    {"serve": serve, "client": client}[sys.argv[1]](*sys.argv[2:])
