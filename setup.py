"""Only the compiled part of the package; everything else is declared in pyproject.toml.

``sovaudit.pipeline._bcfarrow`` decodes ``bcftools norm -Ou``'s BCF stream into Arrow buffers
(pipeline/native.py). It needs a C compiler and Python's headers, nothing else (no htslib, no
zlib). It is optional: where it cannot be built, ``pip install .`` still succeeds and the task
converts through the text path, saying so once on stderr.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sovaudit.pipeline._bcfarrow", sources=["pipeline/_bcfarrow.c"], optional=True,
                  depends=["pipeline/csrc/buffers.h", "pipeline/csrc/values.h", "pipeline/csrc/stream.h",
                           "pipeline/csrc/split.h"],
                  extra_compile_args=["-O2"]),
    ],
)
