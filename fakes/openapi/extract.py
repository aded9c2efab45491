"""Cut Discord's OpenAPI description down to what the fake Discord serves; run by hand, not by the tests.

    python fakes/openapi/extract.py --spec PATH/TO/openapi.json

(Discord's full description, as published in github.com/discord/discord-api-spec.)

Writes ``discord-requests.json`` and its ``LICENSE`` (Discord's, as the spec declares it) next to this file.
The JSON keeps, for each operation in SERVED (the routes of fakes/discord_rest.py), its
``application/json`` request body and every schema that body refers to, transitively. Multipart bodies are the
same schema plus ``files[N]`` parts, so their ``payload_json`` is checked against the JSON schema and the
multipart variants are left out. Schemas are copied unchanged: the spec's own
conventions (``oneOf`` read as ``anyOf``, digit strings for integers) are applied when the fake loads the file.
Re-run it when a route is added to the fake or the spec is updated, and commit the result.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "discord-requests.json"
REF_PREFIX = "#/components/schemas/"

_COMMANDS = "/applications/{application_id}/commands"
_GUILD_COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"
_MESSAGE = "/channels/{channel_id}/messages/{message_id}"
_REACTION = _MESSAGE + "/reactions/{emoji_name}"
_WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"

# (method, path) of every route the fake Discord answers, in the spec's spelling.
SERVED: list[tuple[str, str]] = [
    ("get", "/gateway"),
    ("get", "/gateway/bot"),
    ("get", "/users/@me"),
    ("post", "/users/@me/channels"),
    ("get", "/users/{user_id}"),
    ("get", "/oauth2/applications/@me"),
    ("get", "/applications/@me"),
    ("get", "/applications/{application_id}/emojis"),
    ("post", "/applications/{application_id}/emojis"),
    *[(m, base) for base in (_COMMANDS, _GUILD_COMMANDS) for m in ("get", "put", "post")],
    *[(m, base + "/{command_id}") for base in (_COMMANDS, _GUILD_COMMANDS) for m in ("get", "delete")],
    ("get", "/channels/{channel_id}"),
    ("post", "/channels/{channel_id}/typing"),
    ("get", "/channels/{channel_id}/messages"),
    ("post", "/channels/{channel_id}/messages"),
    ("get", _MESSAGE),
    ("patch", _MESSAGE),
    ("delete", _MESSAGE),
    ("put", _REACTION + "/@me"),
    ("delete", _REACTION + "/@me"),
    ("delete", _REACTION + "/{user_id}"),
    ("get", _REACTION),
    ("delete", _REACTION),
    ("delete", _MESSAGE + "/reactions"),
    ("get", "/guilds/{guild_id}"),
    ("get", "/guilds/{guild_id}/channels"),
    ("get", "/guilds/{guild_id}/roles"),
    ("get", "/guilds/{guild_id}/members/{user_id}"),
    ("get", "/applications/{application_id}/entitlements"),
    ("post", "/applications/{application_id}/entitlements/{entitlement_id}/consume"),
    ("post", "/interactions/{interaction_id}/{interaction_token}/callback"),
    ("post", _WEBHOOK),
    *[(m, _WEBHOOK + "/messages/" + msg) for msg in ("@original", "{message_id}") for m in ("get", "patch", "delete")],
]


def refs(node: Any) -> Iterator[str]:
    """Names of the component schemas ``node`` refers to directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = spec["components"]["schemas"]
    paths: dict[str, dict[str, Any]] = {}
    for method, path in SERVED:
        operation = spec["paths"][path][method]  # a KeyError here: the spec no longer has a route the fake serves
        kept: dict[str, Any] = {"operationId": operation["operationId"]}
        body = operation.get("requestBody")
        if body is not None:
            kept["requestBody"] = {
                "required": body.get("required", False),
                "content": {"application/json": body["content"]["application/json"]},
            }
        paths.setdefault(path, {})[method] = kept
    wanted: set[str] = set()
    todo = list(refs(paths))
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(refs(schemas[name]))
    return {
        "openapi": spec["openapi"],
        "info": spec["info"] | {"x-extracted": "request bodies of the operations fakes/discord.py serves"},
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": {"schemas": {name: schemas[name] for name in sorted(wanted)}},
    }


MIT_TEXT = """\
MIT License

Copyright (c) Discord Inc.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def licence(info: dict[str, Any]) -> str:
    """The LICENSE for the extract: the licence the description declares in ``info.license``, and whence."""
    declared = info.get("license", {})
    if declared.get("identifier") != "MIT":
        raise SystemExit(f"the description now declares {declared!r}, not MIT: write its LICENSE by hand")
    return (
        f"{OUTPUT.name} in this folder is an extract of Discord's OpenAPI description of its v{info['version']} "
        f"HTTP API\n({info['title']!r}, published by Discord in https://github.com/discord/discord-api-spec),\n"
        "cut down by extract.py to the operations the tests' fake Discord serves. It is under the licence the\n"
        f"description declares for itself in its info.license field: {json.dumps(declared)}.\n"
        "That field names no copyright holder; the holder below is the description's author and publisher.\n"
        f"This licence covers {OUTPUT.name} only; extract.py is part of this project.\n\n" + MIT_TEXT
    )


def compact(subset: dict[str, Any]) -> str:
    """JSON with one path and one schema per line: small, and a re-extraction gives a readable diff."""

    def block(items: dict[str, Any]) -> str:
        return "{\n" + ",\n".join(f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in items.items())

    head = [f"{json.dumps(k)}:{json.dumps(subset[k], separators=(',', ':'))}" for k in ("openapi", "info", "servers")]
    paths = block(subset["paths"]) + "\n}"
    schemas = block(subset["components"]["schemas"]) + "\n}"
    text = "{\n" + ",\n".join([*head, f'"paths":{paths}', f'"components":{{"schemas":{schemas}}}']) + "\n}\n"
    assert json.loads(text) == subset
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="Discord's full openapi.json")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    subset = extract(spec)
    text = compact(subset)
    OUTPUT.write_text(text, encoding="utf-8")
    (HERE / "LICENSE").write_text(licence(spec["info"]), encoding="utf-8")
    print(
        f"{OUTPUT}: {len(subset['paths'])} paths, {len(subset['components']['schemas'])} schemas, {len(text):,} bytes"
    )


if __name__ == "__main__":
    main()
