#!/usr/bin/env python3
"""A local model server that tries to get out of its sandbox before it serves (LocalServerTests).

    hostile_server.py PORT HOST_PORT ABSTRACT_NAME MODEL_FILE

It tries, and records how each attempt ended:
  tcp       a TCP connection to 127.0.0.1:HOST_PORT, where the test listens on the host's loopback
  abstract  a connection to the abstract Unix socket ABSTRACT_NAME the test listens on
  model     opening MODEL_FILE (bound read-only) for writing
then runs tools/model-standin.py on PORT with those outcomes as its `model` behaviour, so the
test reads them from the stand-in's /stats inside the sandbox's namespace. An outcome is
"connected"/"opened" or the errno's name.
"""
import errno
import os
import socket
import sys

port, host_port, abstract_name, model_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def outcome(attempt):
    try:
        attempt()
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def tcp():
    with socket.create_connection(("127.0.0.1", host_port), timeout=2):
        pass


def abstract():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect("\0" + abstract_name)


def model():
    with open(model_file, "r+b"):
        pass


results = f"tcp={outcome(tcp)};abstract={outcome(abstract)};model={outcome(model).replace('connected', 'opened')}"
standin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "model-standin.py")
os.execv(sys.executable, [sys.executable, standin, "--port", port, "--model", results])
