#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target under OUT/<target>/ (fuzz.sh calls it).

Seeds are the project's own fixtures where it has them (policies, profiles, the broken-policy
corpus, OSV records) and otherwise built here the way the tests build theirs: archives with
Python's zipfile/tarfile, DNS datagrams, ClientHellos and HTTP heads as in
Tests/CordonEgressTests/ProtocolTests.swift. Generated each run, never committed.
usage: seeds.py OUT REPO [OSV_DIR]
"""
import glob, io, json, os, shutil, struct, sys, tarfile, zipfile

out, repo = sys.argv[1], sys.argv[2]
osv_dir = sys.argv[3] if len(sys.argv) > 3 else ""


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# policy: shipped policies, runtime profiles, and the valid and broken fixtures.
for path in sorted(glob.glob(f"{repo}/policies/*.toml") + glob.glob(f"{repo}/profiles/runtime/*.toml")
                   + glob.glob(f"{repo}/Tests/CordonPolicyTests/Fixtures/*/*.toml")):
    put("policy", path[len(repo) + 1:].replace("/", "_"), open(path, "rb").read())
put("policy", "extends.toml", '[policy]\nname = "x"\nextends = ["default", "runtime:python"]\n'
    '[limits]\nwall_time = "90s"\nmemory = "1G"\n[network]\nmode = "allowlist"\nallow = ["api.example.com:443"]\n')

# json: the shipped seccomp profiles, package.json as npm packages write it (one with a byte
# order mark), image manifests, edge cases of RFC 8259, and JSON-Schema-Test-Suite's files when
# ../shared/data is there.
for path in sorted(glob.glob(f"{repo}/profiles/seccomp/*.json")):
    put("json", os.path.basename(path), open(path, "rb").read())
package = {"name": "x", "version": "1.0.0", "scripts": {"test": "jest", "postinstall": "node i.js"}, "dependencies": {"a": "^1"}}
put("json", "package.json", json.dumps(package, indent=2))
put("json", "package-bom.json", b"\xef\xbb\xbf" + json.dumps(package).encode())
put("json", "manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["a/layer.tar"]}]))
put("json", "index.json", json.dumps({"schemaVersion": 2, "manifests": [{"digest": "sha256:00", "mediaType": "m"}]}))
for i, t in enumerate(['"\\ud83d\\ude00 \\ud800 \\udc00"', '[1e400, 18446744073709551615, -9223372036854775809]',
                       '{"a":1,"a":{"a":[{"a":2}]}}', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
                       '"\\u0000\\b\\f\\n\\r\\t\\/\\\\ \\u2028"']):
    put("json", f"edge{i}.json", t)
put("json", "invalid-utf8.json", b'{"k":"caf\xe9 \xc0\xaf \xed\xa0\x80"}')
suite = os.path.join(os.path.dirname(repo), "shared/data/json-schema-test-suite")
for path in sorted(glob.glob(f"{suite}/**/*.json", recursive=True))[:60]:
    put("json", "schema-suite_" + os.path.basename(path), open(path, "rb").read())

# schema: each case of JSON-Schema-Test-Suite as [schema, instance], MCP tool schemas, and
# patterns (bytes that are not JSON are read as a pattern).
for path in sorted(glob.glob(f"{suite}/draft2020-12/*.json")):
    for i, group in enumerate(json.load(open(path, encoding="utf-8"))):
        for j, test in enumerate(group["tests"][:2]):
            put("schema", f"{os.path.basename(path)[:-5]}-{i}-{j}.json", json.dumps([group["schema"], test["data"]]))
tool = {"type": "object", "properties": {"path": {"type": "string", "pattern": "^[^\\u0000]+$", "maxLength": 4096},
        "mode": {"enum": ["read", "write"]}, "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
        "$defs": {"item": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "unevaluatedProperties": False}},
        "required": ["path"], "additionalProperties": False}
put("schema", "tool.json", json.dumps([tool, {"path": "/x", "mode": "read", "count": 3, "items": [{"name": "a"}, {"x": 1}]}]))
# Draft-07: a tool's schema as zod-to-json-schema writes it (plain, and named: a root $ref into
# definitions), and the suite's draft7 cases with draft-07's $schema written in, when `make
# pydeps` has unpacked them.
d7 = "http://json-schema.org/draft-07/schema#"
zod = {"type": "object", "properties": {"path": {"type": "string", "minLength": 1}, "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}],
       "additionalItems": False}}, "required": ["path"], "additionalProperties": False, "dependencies": {"pair": ["path"]}, "$schema": d7}
put("schema", "zod.json", json.dumps([zod, {"path": "/x", "pair": ["a", 1, 2]}]))
put("schema", "zod-named.json", json.dumps([{"$ref": "#/definitions/Args", "definitions": {"Args": zod}, "$schema": d7}, {"pair": [1]}]))
for path in sorted(glob.glob(f"{repo}/.build/pydeps/json-schema-test-suite/json/tests/draft7/*.json")):
    for i, group in enumerate(json.load(open(path, encoding="utf-8"))):
        schema = group["schema"]
        if isinstance(schema, dict):
            schema = {"$schema": d7, **schema}
        for j, test in enumerate(group["tests"][:2]):
            put("schema", f"draft7-{os.path.basename(path)[:-5]}-{i}-{j}.json", json.dumps([schema, test["data"]]))
for i, p in enumerate(["^[a-z0-9_-]{1,64}$", "(a+)+$", "^\\p{L}[\\p{L}\\d ]*$", "\\bfoo\\b|^(?:x|y){2,3}?$", "[^\\s@]+@[^\\s@]+\\.[a-z]{2,}",
                       "^\\u{1F409}\\uD83D\\uDC09[\\x00-\\x1f]$"]):
    put("schema", f"pattern{i}.txt", p)

# rpc: requests as cordon sends them, and the error cases of DaemonTests.
rpc = [
    {"jsonrpc": "2.0", "id": 1, "method": "system.version"},
    {"jsonrpc": "2.0", "id": 2, "method": "task.submit", "params": {
        "argv": ["python3", "-c", "print(1)"], "policy": "default", "env": {"A": "b"}, "label": "x",
        "limits": {"wall_time": 30, "pids": 64}, "wait": True, "stdin": "hi\n"}},
    {"jsonrpc": "2.0", "id": "a", "method": "task.wait", "params": {"id": 3, "timeout": 1.5}},
    {"jsonrpc": "2.0", "id": None, "method": "task.list", "params": {"limit": 10, "states": ["running"], "all": False}},
    {"jsonrpc": "2.0", "method": "task.cancel", "params": {"id": 9}},
    {"jsonrpc": "2.0", "id": 4, "method": "task.logs", "params": {"id": 1, "follow": True}},
]
for i, r in enumerate(rpc):
    put("rpc", f"request{i}.json", json.dumps(r))
for i, t in enumerate(['{"id":1,"method":"system.version"}', '{"jsonrpc":"2.0","id":{"a":1},"method":"x"}',
                       '[{"jsonrpc":"2.0"}]', '{"a":[1,-2.5e-3,true,false,null,"\\u00e9\\ud83d\\ude00\\n"]}',
                       '{"jsonrpc":"2.0","id":2,"method":"task.submit","params":{"argv":["a"],"argv":["b"]}}',
                       '123456789012345678901234567890', '-0.0e+00']):
    put("rpc", f"edge{i}.json", t)


# archive: each format and filter the reader accepts, with the members a package has.
def tar_bytes(mode, members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as t:
        for name, kind, data in members:
            i = tarfile.TarInfo(name)
            if kind == "dir": i.type = tarfile.DIRTYPE
            elif kind == "sym": i.type, i.linkname = tarfile.SYMTYPE, data
            elif kind == "hard": i.type, i.linkname = tarfile.LNKTYPE, data
            else: i.size = len(data)
            t.addfile(i, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()


def zip_bytes(members, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


members = [("pkg-1.0/setup.py", "file", b"print(1)\n"), ("pkg-1.0/lib", "dir", None),
           ("pkg-1.0/link", "sym", "lib/../setup.py"), ("pkg-1.0/hard", "hard", "pkg-1.0/setup.py")]
wheel = zip_bytes([("pkg/__init__.py", "x = 1\n"), ("./pkg//data.txt", "hello"),
                   ("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n")])
put("archive", "wheel.whl", wheel)
put("archive", "stored.zip", zip_bytes([("a.txt", "a"), ("d/", "")], zipfile.ZIP_STORED))
put("archive", "bzip2.zip", zip_bytes([("a.txt", "a" * 100)], zipfile.ZIP_BZIP2))
put("archive", "sdist.tar.gz", tar_bytes("w:gz", members + [("pkg-1.0/dist/pkg.whl", "file", wheel)]))
put("archive", "gnu.tar.bz2", tar_bytes("w:bz2", members, tarfile.GNU_FORMAT))
put("archive", "ustar.tar.xz", tar_bytes("w:xz", members[:2], tarfile.USTAR_FORMAT))
put("archive", "plain.tar", tar_bytes("w", [("package/package.json", "file", b'{"name":"x"}')]))
put("archive", "evil.tar.gz", tar_bytes("w:gz", [("../up", "file", b"x"), ("/abs", "file", b"x"),
                                                 ("a/l", "sym", "../../etc/passwd")]))
put("archive", "nested.zip", zip_bytes([("inner.tar.gz", tar_bytes("w:gz", [("x/y", "file", b"z")]))]))

# osv: a few hundred real records (YAML) when the data set is there (the shorter ones: a long
# version list makes every run slower), plus JSON ones.
records = [p for p in sorted(glob.glob(f"{osv_dir}/**/*.yaml", recursive=True)) if os.path.getsize(p) <= 3000][:300] \
    if osv_dir else []
for path in records:
    put("osv", os.path.basename(path), open(path, "rb").read())
osv_json = [
    {"id": "GHSA-x", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-1"], "summary": "s", "affected": [
        {"package": {"ecosystem": "npm", "name": "left-pad"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}], "versions": ["1.0.0"]}]},
    {"id": "DSA-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]},
    {"id": "ALPINE-1", "withdrawn": "2024-02-02T00:00:00Z", "affected": [
        {"package": {"ecosystem": "Alpine:v3.18", "name": "musl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.2.0-r0"}, {"last_affected": "1.2.4-r1"}, {"limit": "1.3"}]}]}]},
    {"id": "PYSEC-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Foo.Bar_baz"},
                                    "ranges": [{"type": "GIT", "repo": "r", "events": [{"introduced": "abc"}]},
                                               {"type": "ECOSYSTEM", "events": [{"introduced": "1.0rc1"}, {"fixed": "2.10.post1"}]}],
                                    "versions": ["1.0rc1", "1!2.0.dev3+local.7"]}]},
]
for i, r in enumerate(osv_json):
    put("osv", f"record{i}.json", json.dumps(r, indent=1))


# dns: byte 0 is the harness's mode (even: a query; odd: an upstream answer, bit 1: AAAA).
def query(labels, qtype=1, flags=b"\x01\x00", qd=1, extra=b"", arcount=0, qid=0x1234):
    p = struct.pack(">H", qid) + flags + struct.pack(">HHHH", qd, 0, 0, arcount)
    for l in labels:
        p += bytes([len(l)]) + l
    return p + b"\x00" + struct.pack(">HH", qtype, 1) + extra


put("dns", "a", b"\x00" + query([b"Api", b"EXAMPLE", b"com"]))
put("dns", "aaaa", b"\x00" + query([b"a", b"b"], 28))
put("dns", "edns", b"\x00" + query([b"a", b"example"], extra=b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00", arcount=1))
put("dns", "root", b"\x00" + query([]))
asked = query([b"api", b"example", b"com"], flags=b"\x01\x00", qid=0xabcd)
answer = b"\xab\xcd\x81\x80" + asked[4:6] + b"\x00\x02" + asked[8:] \
    + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xcb\x00\x71\x09" \
    + b"\x03www\x00\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c"
put("dns", "answer-a", b"\x01" + answer)
asked6 = query([b"api", b"example", b"com"], 28, qid=0xabcd)
put("dns", "answer-aaaa", b"\x03" + b"\xab\xcd\x81\x80" + asked6[4:6] + b"\x00\x01" + asked6[8:]
    + b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10" + bytes(range(16)))
put("dns", "nxdomain", b"\x01" + b"\xab\xcd\x81\x83" + asked[4:])


# clienthello: as ProtocolTests' clientHello(extensions:recordSize:).
def hello(extensions, record_size=16384):
    body = b"\x03\x03" + b"\x42" * 32 + b"\x20" + b"\x07" * 32 + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    if extensions is not None:
        ext = b"".join(struct.pack(">HH", t, len(d)) + d for t, d in extensions)
        body += struct.pack(">H", len(ext)) + ext
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(hs[i:i + record_size])) + hs[i:i + record_size]
                    for i in range(0, len(hs), record_size))


def sni(*names):
    lst = b"".join(bytes([t]) + struct.pack(">H", len(n)) + n for t, n in names)
    return (0, struct.pack(">H", len(lst)) + lst)


put("clienthello", "sni", hello([sni((0, b"api.example.com"))]))
put("clienthello", "sni-records", hello([(0x0a, b"\x00\x02\x00\x1d"), sni((0, b"Api.Example.COM."))], 50))
put("clienthello", "no-sni", hello([(0x2b, b"\x02\x03\x04")]))
put("clienthello", "no-extensions", hello(None))
put("clienthello", "two-names", hello([sni((0, b"a.com"), (0, b"b.com"))]))

# http: the heads of ProtocolTests' HTTPTests.
for i, h in enumerate([
        "GET /x?y HTTP/1.1\r\nHost: Api.Example.com:8080\r\nAccept: */*\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nGET /b HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
        "CONNECT [2001:db8::1]:443 HTTP/1.0\r\n\r\n",
        "GET http://API.example.com:8080/p?q#f HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: 203.0.113.9\r\nX-Y:  z\t\r\n\r\n",
        "POST /u HTTP/1.1\r\nhost: a.com\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost: a.com\r\nX: y\r\n folded\r\n\r\n"]):
    put("http", f"head{i}", h)

# httprequest: what the endpoint's clients send, one request or several pipelined.
for i, r in enumerate([
        "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        "GET /v1/models HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "POST /v1/feedback HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"]):
    put("httprequest", f"request{i}", r)

# models: the first byte picks the parser (0 a client's request, 1 an upstream reply, 2 or 3 an
# SSE stream, 4 models.toml); the rest is its input.
chat = {"model": "auto:code", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "max_tokens": 64, "stream": True, "stream_options": {"include_usage": True}, "stop": ["\n\n"]}
put("models", "request", b"\x00" + json.dumps(chat).encode())
put("models", "request-small", b"\x00" + json.dumps({"model": "small", "messages": [{"role": "user", "content": "hi"}]}).encode())
put("models", "reply", b"\x01" + json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0,
    "message": {"role": "assistant", "content": "hi", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode())
put("models", "reply-anthropic", b"\x01" + json.dumps({"id": "msg", "type": "message", "role": "assistant", "model": "c", "content": [
    {"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}], "stop_reason": "tool_use",
    "usage": {"input_tokens": 3, "output_tokens": 2}}).encode())
chunks = [{"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "h"}}]},
          {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
              {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}}]},
          {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
          {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}]
put("models", "stream-openai", b"\x02" + b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b": ping\r\n\r\ndata: [DONE]\n\n")
events = [("message_start", {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "c", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}}),
          ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
          ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
          ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
          ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
          ("content_block_stop", {"type": "content_block_stop", "index": 1}),
          ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
          ("message_stop", {"type": "message_stop"})]
put("models", "stream-anthropic", b"\x03" + b"".join(f"event: {e}\r\ndata: {json.dumps(d)}\r\n\r\n".encode() for e, d in events))
put("models", "catalogue", b"\x04" + open(os.path.join(repo, "packaging/models.toml"), "rb").read())

# packaging: the first byte picks the reader (0 a PEP 691 project page, 1 a requirements file,
# 2 a distribution file name); the rest is its input.
sha = "ab" * 32
page = {"meta": {"api-version": "1.1"}, "name": "Requests", "versions": ["2.31.0"], "files": [
    {"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://files.example/r.whl", "hashes": {"sha256": sha},
     "requires-python": ">=3.7", "yanked": False, "upload-time": "2023-05-22T15:12:44.175373Z", "size": 62574,
     "core-metadata": {"sha256": sha}, "provenance": "https://pypi.example/integrity/requests/2.31.0/r.whl/provenance"},
    {"filename": "requests-2.31.0.tar.gz", "url": "../../f/requests-2.31.0.tar.gz", "hashes": {"sha256": sha, "md5": "00" * 16},
     "yanked": "broken build", "dist-info-metadata": True, "upload-time": "2023-05-22T15:12:42Z"}]}
put("packaging", "page", b"\x00" + json.dumps(page).encode())
put("packaging", "page-empty", b"\x00" + json.dumps({"meta": {"api-version": "1.0"}, "name": "x", "files": []}).encode())
put("packaging", "requirements", b"\x01" + f"""# hashes as pip-compile writes them
requests[socks]==2.31.0 \\
    --hash=sha256:{sha} \\
    --hash=sha256:{"cd" * 32}
urllib3>=1.21.1,<3 ; python_version >= "3.8"  # comment
zope.interface===6.1\r
Flask
""".encode())
put("packaging", "requirements-refused", b"\x01-i https://example/simple\nrequests @ https://example/r.whl\n")
for i, name in enumerate(["typing_extensions-4.8.0-py3-none-any.whl", "charset_normalizer-3.3.2-1b-cp311-cp311-manylinux_2_17_x86_64.whl",
                          "zope.interface-6.1.tar.gz", "python-dateutil-2.8.2.zip"]):
    put("packaging", f"name{i}", b"\x02" + name.encode())

