#!/usr/bin/env bash
# Tool calls through Cordon against the same MCP server without it, from one run (bench/tools.py
# says what each row is). Needs root, the release build and `make pydeps`.
#
# Usage: bench/tools.sh [CALLS] [ROUNDS]   (defaults 300 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/tools.sh: needs root (cordond runs sandboxes)" >&2; exit 1; }
command -v bwrap >/dev/null || { echo "bench/tools.sh: bwrap is not installed (apt-get install bubblewrap)" >&2; exit 1; }
make -s release >/dev/null
make -s pydeps >/dev/null
VENV="$PWD/.build/pydeps/mcp"
SCRATCH="$(mktemp -d /tmp/cordon-bench-tools.XXXXXX)"
chmod 755 "$SCRATCH"
mkdir -p "$SCRATCH/config/policies" "$SCRATCH/config/tools" "$SCRATCH/state" "$SCRATCH/run"
chmod 755 "$SCRATCH/run"
cat > "$SCRATCH/config/policies/time-tool.toml" <<TOML
[policy]
name = "time-tool"
extends = ["python-tool"]
[filesystem]
read_only = ["$VENV", { path = "/usr/share/zoneinfo", optional = true }]
[limits]
wall_time = "1h"
TOML
cat > "$SCRATCH/config/tools/time.toml" <<TOML
[tool]
kind = "mcp"
description = "Current time"
command = ["$VENV/bin/python3", "-m", "mcp_server_time", "--local-timezone", "UTC"]
policy = "time-tool"
[service]
max_instances = 8
TOML
cat > "$SCRATCH/config/tools/python.toml" <<'TOML'
[tool]
kind = "command"
description = "Runs Python code"
policy = "python-tool"
argv = ["/usr/bin/python3", "-I", "-c", "import json, sys; exec(json.load(sys.stdin)['code'])"]
input_schema = '{"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}'
TOML
.build/release/cordond --config-dir "$SCRATCH/config" --state-dir "$SCRATCH/state" --runtime-dir "$SCRATCH/run" 2>"$SCRATCH/cordond.log" &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 200); do [ -S "$SCRATCH/run/cordon.sock" ] && break; sleep 0.05; done
# bubblewrap given the same kind of root as a sandbox (bench/spawn.sh's), plus the venv.
BWRAP=$(python3 -c 'import json, sys; print(json.dumps(["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--ro-bind", "/etc", "/etc", "--ro-bind", sys.argv[1], sys.argv[1], "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--new-session"]))' "$VENV")
"$VENV/bin/python3" bench/tools.py "$SCRATCH/run/cordon.sock" "$PWD/.build/release/cordon" "$BWRAP" "${1:-300}" "${2:-3}"
