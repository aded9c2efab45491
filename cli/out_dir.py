"""`--out` is checked before anything is paid for: a folder that exists or can be made, and can take a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from services.errors import BadInput


def check_out_dir(path: Path) -> None:
    """Raise BadInput unless images can be written to `path`. Nothing is left behind (the folder is made later)."""
    # The nearest part of the path that exists must be a folder we can write in; the rest can then be made.
    existing = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)
    if existing is None:
        raise BadInput(f"--out {path}: no part of that path exists.")
    where = "it" if existing == path else str(existing)
    if not existing.is_dir():
        kind = "a file" if existing.is_file() else "something else"
        raise BadInput(f"--out {path}: {where} is {kind}, not a folder.")
    try:
        # Really try: permission bits say nothing for root, read-only mounts or special file systems.
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".flux-write-check-"):
            pass
    except OSError as exc:
        raise BadInput(f"--out {path}: cannot write in {where} ({exc.strerror or exc}).") from None
