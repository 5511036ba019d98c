"""Run an iterator in its own thread, a few items ahead of its consumer.

Why: the compiled path's main thread used to decode a batch (``_bcfarrow``, GIL released), then
build its Arrow table, then decode the next. While it built, nobody read the pipe from
``bcftools view``, whose 64 KiB filled within milliseconds: the child stopped, and its core idled
while this process ran one thread. Decoding in a thread of its own keeps the child streaming
while the table is built, so the child, the decoder, the table build and the Parquet writer
overlap on two cores. Each batch the decoder returns owns its buffers (``bytes`` copies), so
reading ahead cannot overwrite a batch still being converted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(items: Iterator[T], depth: int = 2, name: str = "read-ahead") -> Iterator[T]:
    """Yield ``items`` as the thread produces them, holding at most ``depth`` in hand.

    An exception the iterator raises is raised here, at the item where it happened, so callers
    see the same errors in the same order as without the thread. When the consumer stops early
    (an error of its own, an interrupt, ``close()``), the thread is told to stop and is waited
    for: it never outlives the stream it reads (the caller closes the pipe right after).
    """
    pending: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(error)
            return
        put(_END)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
