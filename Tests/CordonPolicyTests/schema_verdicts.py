"""Prints, for each policy file, what the JSON Schema says of it: valid, invalid or toml-error."""
import json
import sys
import tomllib

import jsonschema

with open(sys.argv[1]) as f:
    schema = json.load(f)
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except tomllib.TOMLDecodeError:
        print(path, "toml-error")
        continue
    print(path, "valid" if validator.is_valid(document) else "invalid")
