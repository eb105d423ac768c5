#!/usr/bin/env python3
"""A transparent stdio proxy that records an MCP stdio session.

    stdio_tap.py --log FILE [--] COMMAND [ARGS...]

Starts COMMAND, copies this process's stdin to COMMAND's stdin and COMMAND's stdout to this
process's stdout, line by line and unchanged, and appends each line to FILE as one JSON object:
{"t": seconds since the tap started, "dir": "c2s" | "s2c", "line": the line as sent, "json":
the line parsed, or null when it is not JSON}. COMMAND's stderr is left as it is. Put the tap
in front of a server's command line to see what a client sends first; it uses the standard
library only, so any python3 runs it.

Ends when COMMAND exits (its status is this process's), or when stdin closes and COMMAND then
exits.
"""
import json
import subprocess
import sys
import threading
import time


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "--log":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    log_path, command = args[1], args[2:]
    if command[0] == "--":
        command = command[1:]
    start = time.monotonic()
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def record(direction: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\n")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        entry = {"t": round(time.monotonic() - start, 6), "dir": direction, "line": text, "json": parsed}
        with lock:
            log.write(json.dumps(entry) + "\n")

    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def client_to_server() -> None:
        try:
            for raw in iter(sys.stdin.buffer.readline, b""):
                record("c2s", raw)
                child.stdin.write(raw)
                child.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                child.stdin.close()
            except OSError:
                pass

    threading.Thread(target=client_to_server, daemon=True).start()
    out = sys.stdout.buffer
    for raw in iter(child.stdout.readline, b""):
        record("s2c", raw)
        try:
            out.write(raw)
            out.flush()
        except BrokenPipeError:
            break
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
