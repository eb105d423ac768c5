"""Validates a JSON document against a schema of ../shared/data/schemas (with the files it $refs)."""
import json
import os
import sys

import jsonschema

schema_dir, schema_name, document = sys.argv[1], sys.argv[2], sys.argv[3]
store = {}
for name in os.listdir(schema_dir):
    if name.endswith(".json"):
        with open(os.path.join(schema_dir, name)) as f:
            s = json.load(f)
        store[name] = s
        for key in ("$id", "id"):  # draft 7 and draft 4 spellings
            if isinstance(s.get(key), str):
                store[s[key]] = s
schema = store[schema_name]
resolver = jsonschema.RefResolver(base_uri=schema.get("$id", schema.get("id", "")), referrer=schema, store=store)
with open(document) as f:
    doc = json.load(f)
jsonschema.validate(doc, schema, resolver=resolver, cls=jsonschema.validators.validator_for(schema))
print("valid")
