"""Validates an OpenAPI 3.1 document (a JSON file) with openapi-spec-validator; prints OK or
the errors, and exits 1 on any."""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
if doc.get("openapi", "").split(".")[:2] != ["3", "1"]:
    print(f"not an OpenAPI 3.1 document: openapi = {doc.get('openapi')!r}")
    sys.exit(1)
errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
for e in errors:
    print(f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}")
if errors:
    sys.exit(1)
print("OK")
