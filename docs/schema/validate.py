#!/usr/bin/python3
"""Validate sriov-top JSON against one of the JSON Schemas beside this file.

    validate.py SCHEMA [--document] [FILE ...]

Without FILE (or with `-`) the input is standard input.

- NDJSON (the default, for `sriov-top --json` streams): every non-empty line
  is one JSON document, checked on its own.
- `--document`: each input is one JSON document, pretty-printed or not (for
  `sriov list --json` / `sriov show DEV --json`).

The validator is Python's jsonschema (`Draft202012Validator`; Debian's
python3-jsonschema, which `cargo xtask setup` installs). Format checking is
off: the schemas use no `format` keyword, the shapes of times, BDFs, MACs
and ids are `pattern`s, which are always checked. The schema itself is first
checked against the draft 2020-12 meta-schema.

Every failure is printed as `FILE:LINE: at PATH: MESSAGE` (PATH is a JSON
pointer into the document, `(document)` for the whole; LINE is 1 for
`--document`). Exit status: 0 when
everything is valid, 1 when anything is not, 2 when validation could not run
(usage, unreadable file, invalid schema, jsonschema missing).
"""
import json
import sys

USAGE = "usage: validate.py SCHEMA [--document] [FILE ...]"


def fail(message):
    print(f"validate.py: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError as e:
    fail(
        f"{e} ({sys.executable}): the Python package jsonschema with draft 2020-12 "
        "support is missing; run `cargo xtask setup` as root (installs the Debian "
        "package python3-jsonschema)"
    )


def pointer(path):
    """JSON pointer of a jsonschema error path."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "(document)"


def explain(error):
    """The error that explains `error`: for a failed anyOf (a field that is
    null or an object) the error of the branch that came closest, not the
    "is not of type 'null'" of the other branch."""
    while error.context:
        closer = [c for c in error.context if c.validator != "type" or c.relative_path]
        if not closer:  # of no type the branches take
            break
        error = max(closer, key=lambda c: len(c.absolute_path))
    return error


def check(validator, name, line, text):
    """Print the failures of one document; return how many."""
    try:
        instance = json.loads(text)
    except json.JSONDecodeError as e:
        print(f"{name}:{line}: not JSON: {e}")
        return 1
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    for e in errors:
        e = explain(e)
        print(f"{name}:{line}: at {pointer(e.absolute_path)}: {e.message}")
    return len(errors)


def main(argv):
    args = [a for a in argv if a != "--document"]
    document = len(args) != len(argv)
    if not args or args[0] in ("-h", "--help"):
        fail(USAGE)
    schema_path, inputs = args[0], args[1:] or ["-"]
    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        fail(f"schema {schema_path}: {e}")
    validator = Draft202012Validator(schema)
    failures, documents = 0, 0
    for name in inputs:
        try:
            if name == "-":
                text, name = sys.stdin.read(), "<stdin>"
            else:
                with open(name, encoding="utf-8") as f:
                    text = f.read()
        except OSError as e:
            fail(f"reading {name}: {e}")
        if document:
            documents += 1
            failures += check(validator, name, 1, text)
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                documents += 1
                failures += check(validator, name, n, line)
    if documents == 0:
        print("no JSON document in the input")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
