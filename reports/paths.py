"""Bundle-relative file names, checked before any file is opened or written.

Names in a manifest or an attestation come from a file someone handed us. Only plain relative
POSIX names that stay inside the bundle (after following symlinks) are ever used.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def bundle_file(bundle: Path, name: object) -> tuple[Path | None, str]:
    """(the file `name` denotes inside `bundle`, '') or (None, why the name is refused)."""
    if not isinstance(name, str) or not name:
        return None, "the name is empty"
    if "\x00" in name or "\\" in name:
        return None, "the name contains a NUL or a backslash"
    pure = PurePosixPath(name)
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return None, "the name is an absolute path, outside the bundle"
    if any(part in ("..", ".", "") for part in name.split("/")):
        return None, "the name contains '..' or an empty component and could escape the bundle"
    root = Path(os.path.realpath(bundle))
    candidate = bundle.joinpath(*pure.parts)
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        return None, f"the name resolves outside the bundle (a symlink to {resolved})"
    return candidate, ""
