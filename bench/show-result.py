"""Splits `cordon run --json` output into the workload's output and the result record."""
import json
import sys

lines = sys.stdin.read().splitlines()
record = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
print("workload output:", "\n".join(lines[:-1] if record else lines) or "(none)")
if record:
    print("result record:")
    print(json.dumps(record, indent=2, sort_keys=True))
    sys.exit(0 if record.get("reason") == "exited" else 1)
