"""sovaudit: evidence that a Google Cloud sovereign node keeps its promises."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# In the source tree the sub-packages live beside this folder (audit/, pipeline/, reports/, ...),
# mapped into `sovaudit.*` by pyproject's package-dir. When this folder is imported straight from a
# checkout (e.g. `python -m pytest` puts the checkout first on sys.path), extend the package path so
# `sovaudit.audit` still resolves to ../audit. An installed wheel nests them and never takes this branch.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "audit" / "__init__.py").is_file() and not (_Path(__file__).parent / "audit").exists():
    __path__.append(str(_checkout))  # type: ignore[name-defined]  # noqa: F821
