"""read_ahead: same items, same errors at the same place, bounded, and no thread left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sovaudit.pipeline.readahead import read_ahead


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_yields_every_item_in_order() -> None:
    assert list(read_ahead(iter(range(1000)), name="ra-order")) == list(range(1000))
    assert not _threads("ra-order")


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad record at chr1:5")

    seen: list[int] = []
    with pytest.raises(ValueError, match="chr1:5"):
        for item in read_ahead(items(), name="ra-error"):
            seen.append(item)
    assert seen == [1, 2]
    assert not _threads("ra-error")


def test_holds_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    stream = read_ahead(items(), depth=2, name="ra-depth")
    assert next(stream) == 0
    time.sleep(0.3)
    # one handed out, two queued, one more made and waiting to be queued
    assert len(produced) <= 4
    stream.close()
    assert not _threads("ra-depth")


def test_closing_early_stops_the_thread_before_returning() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            i += 1
            yield i

    stream = read_ahead(endless(), name="ra-close")
    assert next(stream) == 1
    stream.close()
    assert not _threads("ra-close")
