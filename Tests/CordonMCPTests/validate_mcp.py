"""Validates MCP messages against the official JSON Schema of their revision (CordonMCPTests).

    validate_mcp.py SCHEMA_DIR MANIFEST

SCHEMA_DIR holds schema-2025-11-25.json and schema-2026-07-28.json. MANIFEST is a JSON array of
checks, each {"file": PATH, "revision": "2025-11-25", "def": "InitializeRequest", "pointer": ""}:
the JSON document in PATH (at the JSON pointer, "" for all of it) must be valid against the
definition `def` of that revision's schema, read with Draft 2020-12 as the schemas declare.
Prints one line per check, "ok ..." or "FAIL ...", and exits 1 if any failed.
"""
import json
import os
import sys

import jsonschema

schema_dir, manifest_path = sys.argv[1], sys.argv[2]
documents = {}
validators = {}


def validator(revision, name):
    key = (revision, name)
    if key not in validators:
        if revision not in documents:
            with open(os.path.join(schema_dir, f"schema-{revision}.json")) as f:
                documents[revision] = json.load(f)
        document = documents[revision]
        if name not in document["$defs"]:
            raise KeyError(f"{revision} has no definition {name}")
        # The whole document, so every "#/$defs/..." reference resolves, entered at one definition.
        schema = dict(document)
        schema["$ref"] = f"#/$defs/{name}"
        cls = jsonschema.validators.validator_for(schema)
        assert cls is jsonschema.Draft202012Validator, cls
        cls.check_schema(schema)
        validators[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validators[key]


def resolve(value, pointer):
    for part in [p for p in pointer.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


with open(manifest_path) as f:
    checks = json.load(f)
failed = 0
for check in checks:
    with open(check["file"]) as f:
        message = json.load(f)
    target = resolve(message, check.get("pointer", ""))
    errors = sorted(validator(check["revision"], check["def"]).iter_errors(target), key=lambda e: list(e.path))
    label = f'{check["revision"]} {check["def"]}{check.get("pointer", "")} {os.path.basename(check["file"])}'
    if errors:
        failed += 1
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        print(f"FAIL {label}: at /{where}: {first.message[:300]}")
    else:
        print(f"ok {label}")
print(f"{len(checks) - failed} valid, {failed} invalid")
sys.exit(1 if failed else 0)
