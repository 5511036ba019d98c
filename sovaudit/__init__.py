"""sovaudit: evidence that a Google Cloud sovereign node keeps its promises."""

__version__ = "0.1.0"
