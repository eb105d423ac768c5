#!/usr/bin/env python3
"""Real servers for the egress tests, on addresses of a network namespace the test made.

Usage: egress_servers.py DIR ADDR_A ADDR_B ADDR_PRIVATE ADDR_DNS
Starts, each on a free port: an HTTP server and an HTTPS server (certificate for api.test and
other.test from a test CA written to DIR/ca.pem) on ADDR_A, an HTTPS server on ADDR_A:443
standing in for api.anthropic.com (POST /v1/messages) and for pypi.org / files.pythonhosted.org
(a simple index with one wheel, tinypkg 1.0), a TCP echo server on ADDR_B, an
HTTP server on ADDR_PRIVATE, a UDP sink on ADDR_A, and a DNS server on ADDR_DNS that answers A
queries from a fixed table and logs every question to DIR/dns.log. Prints one JSON line with the
ports, then serves until stdin closes. Every request line an HTTP server sees goes to
DIR/http.log; every datagram the sink gets to DIR/udp.log.
"""
import base64
import hashlib
import io
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR, ADDR_A, ADDR_B, ADDR_PRIVATE, ADDR_DNS = sys.argv[1:6]
LOCK = threading.Lock()


def log(name, line):
    with LOCK, open(os.path.join(DIR, name), "a") as f:
        f.write(line + "\n")


def wheel():
    files = {"tinypkg/__init__.py": b"VALUE = 42\n",
             "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
             "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: cordon-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
                     for name, data in files.items()) + "tinypkg-1.0.dist-info/RECORD,,\n"
    files["tinypkg-1.0.dist-info/RECORD"] = record.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


WHEEL = wheel()
WHEEL_NAME = "tinypkg-1.0-py3-none-any.whl"


class Handler(BaseHTTPRequestHandler):
    def reply(self, body, kind="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        log("http.log", f"{self.server.label} {self.headers.get('Host')} {self.path}")
        host = (self.headers.get("Host") or "").split(":")[0]
        if host == "pypi.org" and self.path.rstrip("/") == "/simple/tinypkg":
            digest = hashlib.sha256(WHEEL).hexdigest()
            link = f"https://files.pythonhosted.org/packages/{WHEEL_NAME}#sha256={digest}"
            return self.reply(f'<html><body><a href="{link}">{WHEEL_NAME}</a></body></html>'.encode(), "text/html")
        if host == "files.pythonhosted.org" and self.path == f"/packages/{WHEEL_NAME}":
            return self.reply(WHEEL, "application/octet-stream")
        body = f"hello from {self.server.label} for {self.headers.get('Host')}\n".encode()
        if self.path.startswith("/bulk/"):
            body = b"x" * int(self.path.split("/")[2])
        self.reply(body)

    def do_POST(self):
        log("http.log", f"{self.server.label} {self.headers.get('Host')} POST {self.path}")
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        prompt = request.get("messages", [{}])[-1].get("content", "")
        self.reply(json.dumps({"content": [{"type": "text", "text": f"model says: {prompt[::-1]}"}]}).encode(), "application/json")

    def log_message(self, *args):
        pass


def http(addr, label, context=None, port=0):
    server = ThreadingHTTPServer((addr, port), Handler)
    server.label = label
    if context:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def certificates():
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=DIR)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cordon test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=api.test", "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(DIR, "san.cnf"), "w") as f:
        f.write("subjectAltName=DNS:api.test,DNS:other.test,DNS:api.anthropic.com,DNS:pypi.org,DNS:files.pythonhosted.org\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.cnf", "-out", "server.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(DIR, "server.pem"), os.path.join(DIR, "server.key"))
    return context


CONTEXT = certificates()


def echo(addr):
    listener = socket.create_server((addr, 0))

    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def udp_sink(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))

    def serve():
        while True:
            data, peer = s.recvfrom(2048)
            log("udp.log", f"{peer} {data!r}")
    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


TABLE = {"api.test": ADDR_A, "other.test": ADDR_A, "echo.test": ADDR_B, "priv.test": ADDR_PRIVATE,
         "www.wild.test": ADDR_A}


def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR_DNS, 0))

    def serve():
        while True:
            query, peer = s.recvfrom(2048)
            qid, flags, qd = struct.unpack("!HHH", query[:6])
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
                i += 1 + query[i]
            qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
            question = query[12:i + 5]
            name = ".".join(labels).lower()
            log("dns.log", f"{name} {qtype}")
            address = TABLE.get(name)
            if address and qtype == 1:
                answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(address)
                reply = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
            else:
                rcode = 0 if address else 3
                reply = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 0, 0, 0) + question
            s.sendto(reply, peer)
    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


ports = {
    "http": http(ADDR_A, "a"),
    "https": http(ADDR_A, "a-tls", CONTEXT),
    "https443": http(ADDR_A, "public-tls", CONTEXT, 443),
    "private_http": http(ADDR_PRIVATE, "private"),
    "echo": echo(ADDR_B),
    "udp": udp_sink(ADDR_A),
    "dns": dns(),
}
print(json.dumps(ports), flush=True)
sys.stdin.read()
