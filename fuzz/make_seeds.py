#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets into fuzz/seeds/<target>/, from the
test fixtures: the JSON literals (`json!(...)`) of the ingestion and mapping tests, the SDK
scenario, the example configuration and the configuration tests' TOML. Run it from anywhere
(`python3 fuzz/make_seeds.py`) after changing those fixtures; it replaces the seed files, but
keeps the crash reproducers committed by hand (`regression-*`).

Each target reads its input as its fuzz_targets/*.rs file says: a mode byte first for
`tracking` and `mapping`, the text alone for `json_cursor`, length-prefixed secret and
signature for `webhook`, TOML text for `config`.
"""

import gzip
import hashlib
import hmac
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
PER_TARGET = 40


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def sources(directory):
    """The Rust files under `directory`, in a stable order."""
    found = []
    for root, _, files in os.walk(os.path.join(ROOT, directory)):
        found += [os.path.relpath(os.path.join(root, f), ROOT) for f in files if f.endswith(".rs")]
    return sorted(found)


def json_literals(path):
    """The arguments of `json!(...)` in a Rust file that are plain JSON (Rust variables and
    expressions dropped, trailing commas removed), in file order, without repeats."""
    text = read(path)
    found, seen = [], set()
    for start in [m.end() for m in re.finditer(r"json!\(", text)]:
        depth, i, in_str = 1, start, False
        while i < len(text) and depth:
            c = text[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            i += 1
        body = text[start : i - 1]
        body = body.replace("WRITE_KEY", '"wk_test_123"')
        body = re.sub(r",(\s*[}\]])", r"\1", body)
        try:
            value = json.loads(body)
        except ValueError:
            continue
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            found.append(value)
    return found


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def write(target, name, data):
    directory = os.path.join(SEEDS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def is_event(value):
    return isinstance(value, dict) and ("type" in value or "userId" in value)


def tracking_and_webhook():
    literals = []
    for path in sources("crates/server/src/ingest") + ["crates/server/tests/ingest.rs"]:
        literals += json_literals(path)
    events = [v for v in literals if is_event(v)]
    batches = [v for v in literals if isinstance(v, dict) and "batch" in v]
    scenario = json.loads(read("crates/server/tests/sdk/scenario.json"))["steps"]
    sdk = []
    for i, step in enumerate(scenario):
        traits = {step["audience"]: step["member"], "email": step["email"]}
        if "name" in step:
            traits["name"] = step["name"]
        sdk.append(
            {
                "type": step["call"],
                "userId": step["user"],
                "messageId": "sdk-%d" % i,
                "traits": traits,
                "context": {"personas": {"computation_key": step["audience"]}},
            }
        )
    # As the SDKs write it: lone surrogates as \u escapes (ensure_ascii), numeric ids.
    sdk_batch = json.dumps({"batch": sdk[:6], "writeKey": "wk_test_123"}).encode()
    raw = [
        (0, b'{"batch": [{"type": "identify", "userId": "u", "messageId": 1000000000000000000000000000001, "traits": {"name": "Ann \\ud83d", "b": "\\\\ud83d", "c": "\\ud83d\\ud83d\\ude00"}}]}'),
        (1, b'{"userId": "u", "messageId": 1.50e3, "traits": {"n": "\\udc00"}, "writeKey": "k"}'),
        (3, b'[{"type": "track", "messageId": -0, "event": "\\ud83d"}, 7, "x"]'),
        (0, b'{"batch": [}'),
        (0, b'{"batch": {"type": "identify"}}'),
        (0, b"\xef\xbb\xbf{}"),
        (0, b'{"batch": [' + b"[" * 200 + b"]" * 200 + b"]}"),
        (16, b'{"batch": [{"type": "identify"}, {"type": "identify"}, {"type": "identify"}, {"type": "identify"}]}'),
        (0, sdk_batch),
        (4, sdk_batch),
        (8, gzip.compress(sdk_batch, mtime=0)),
    ]
    tracking = []
    for mode, body in raw:
        tracking.append(bytes([mode]) + body)
    for batch in batches:
        tracking.append(bytes([0]) + dumps(batch))
    for n, event in enumerate(events):
        mode = [1, 2, 3, 17][n % 4]
        tracking.append(bytes([mode]) + dumps(event))
    for n, data in enumerate(tracking[:PER_TARGET]):
        write("tracking", "%02d" % n, data)

    # json_cursor: the same texts without the mode byte (not gzip), and numbers and escapes at
    # the edges of what the cursor reads.
    texts = [
        b'[0, -0, 1.5, -2.25e3, 1E-5, 2e+10, 1e300, 1e-300, 0e5, 1e400, 01, 1., -]',
        b'"\\u00e9\\ud83d\\ude00 \\" \\/ \\b\\f\\n\\r\\t"',
        b'{"a": 1, "a": [true, false, null], "": {}}',
        b'[' * 64 + b']' * 64,
    ]
    texts += [body for mode, body in raw if mode & 12 == 0]
    texts += [dumps(batch) for batch in batches] + [dumps(event) for event in events]
    for n, data in enumerate(texts[:PER_TARGET]):
        write("json_cursor", "%02d" % n, data)

    webhook = []
    secret = b"s3cret"
    bodies = [dumps(e) for e in events[:12]] + [dumps(events[:2]), dumps(events[2:6])]
    bodies += [b'[{"type": "identify", "userId": "u", "traits": {"n": "\\ud83d"}}]', b"[]", b"{}"]
    for n, body in enumerate(bodies):
        if n % 3 == 0:
            signed = body
        elif n % 3 == 1 and body.startswith(b"[") and len(body) > 2:
            # Segment's Webhooks (Actions): the first event only.
            first = json.loads(body)
            signed = dumps(first[0]) if first else body
        else:
            signed = b"not the body"
        tag = hmac.new(secret, signed, hashlib.sha1).hexdigest().encode()
        webhook.append(bytes([len(secret)]) + secret + bytes([len(tag)]) + tag + body)
    for n, data in enumerate(webhook[:PER_TARGET]):
        write("webhook", "%02d" % n, data)


def mapping():
    files = [
        "crates/segment/tests/mapping_directives.rs",
        "crates/segment/tests/mapping_errors.rs",
        "crates/destination/src/fields.rs",
    ]
    literals = [v for f in files for v in json_literals(f)]
    event = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"name": "Ann", "age": 41, "email": "Ann@Example.com", "tags": ["a", "b"]},
        "properties": {"single": {"id": "s1"}, "price": 1.5},
        "context": {"personas": {"computation_key": "vip"}},
    }
    mappings = [v for v in literals if "@" in json.dumps(v)]
    events = [v for v in literals if isinstance(v, dict) and "@" not in json.dumps(v)]
    seeds = []
    for n, m in enumerate(mappings[: PER_TARGET - 10]):
        ev = events[n % len(events)] if events and n % 2 else event
        seeds.append(bytes([0]) + dumps(m) + b"\xff" + dumps(ev))
    templates = [
        "Hello, {{traits.name}}!",
        "{{traits.tags}}|{{properties.price}}",
        "{{#if}}{{",
        "{{traits.name | upcase}}",
    ]
    for n, t in enumerate(templates):
        seeds.append(bytes([1]) + t.encode() + b"\xff" + dumps(event))
        seeds.append(bytes([3]) + t.encode() + b"\xff" + dumps(event))
    seeds.append(bytes([2]) + b"$.traits.tags[1]" + b"\xff" + dumps(event))
    seeds.append(bytes([2]) + b"properties.single['id']")
    for n, data in enumerate(seeds[:PER_TARGET]):
        write("mapping", "%02d" % n, data)


def toml_literals(path):
    """The string literals of a Rust file that look like configuration TOML (raw strings, and
    plain ones with `\\n`), `format!` placeholders filled in with a valid API key or a name."""
    text = read(path)
    found = [m.group(1) for m in re.finditer(r'r#"(.*?)"#', text, re.S)]
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', text):
        if "\\n" in m.group(1):
            found.append(m.group(1).encode().decode("unicode_escape"))
    out = []
    for body in found:
        if "=" not in body or not re.search(r"^\s*\[|^\s*\w+\s*=", body, re.M):
            continue
        body = body.replace("{KEY}", "0123456789abcdef0123456789abcdef")
        body = re.sub(r"\{(\w+)\}", r"\1", body)
        out.append(body.replace("{{", "{").replace("}}", "}"))
    return out


def config():
    seeds = [read("crates/server/examples-config/iterable-lists.toml")]
    readme = read("README.md")
    seeds += re.findall(r"```toml\n(.*?)```", readme, re.S)
    for path in sources("crates/server/src/config"):
        seeds += toml_literals(path)
    unique = []
    for s in seeds:
        if s not in unique:
            unique.append(s)
    for n, text in enumerate(unique[:PER_TARGET]):
        data = text.encode()
        if n % 5 == 1:
            data += b"\xff0123456789abcdef0123456789abcdef"
        write("config", "%02d" % n, data)


if __name__ == "__main__":
    # Crash reproducers kept by hand (`regression-*`) stay; the generated seeds are replaced.
    for target in os.listdir(SEEDS) if os.path.isdir(SEEDS) else []:
        for name in os.listdir(os.path.join(SEEDS, target)):
            if not name.startswith("regression-"):
                os.remove(os.path.join(SEEDS, target, name))
    tracking_and_webhook()
    mapping()
    config()
    for target in sorted(os.listdir(SEEDS)):
        print(target, len(os.listdir(os.path.join(SEEDS, target))))
