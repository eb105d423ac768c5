#!/usr/bin/env python3
"""A package index for the install gate's tests: PEP 691 JSON pages and files over HTTP/1.1.

Serves ROOT (written by make_index.py): GET /simple/NAME/ answers ROOT/simple/NAME/index.json
as application/vnd.pypi.simple.v1+json; GET /files/... answers the file; anything else 404.
Every request line is appended to --log, so a test can say which requests (none, from a build
sandbox) reached the index. Prints its port on stdout once it listens; ends when its parent does.

usage: index_standin.py ROOT --host ADDR [--port N] [--log FILE]
"""
import argparse, http.server, os, socketserver, sys, threading, time

p = argparse.ArgumentParser()
p.add_argument("root")
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, default=0)
p.add_argument("--log")
a = p.parse_args()
root = os.path.realpath(a.root)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # uv asks HEAD first (to read a wheel's METADATA by ranges); no Accept-Ranges: it GETs.
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if a.log:
            with open(a.log, "a") as f:
                f.write(f"{self.command} {self.path}\n")
        path = self.path.split("?", 1)[0]
        if path.startswith("/simple/") and path.endswith("/"):
            target, kind = os.path.join(root, path.strip("/"), "index.json"), "application/vnd.pypi.simple.v1+json"
        elif path.startswith("/files/"):
            target, kind = os.path.join(root, path.lstrip("/")), "application/octet-stream"
        else:
            return self.answer(404, b"not found\n", "text/plain")
        target = os.path.realpath(target)
        if not target.startswith(root + os.sep) or not os.path.isfile(target):
            return self.answer(404, b"not found\n", "text/plain")
        with open(target, "rb") as f:
            self.answer(200, f.read(), kind)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def orphaned(parent=os.getppid()):
    # The test that started it may be killed before it can stop it: then this ends too.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=orphaned, daemon=True).start()
server = Server((a.host, a.port), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
