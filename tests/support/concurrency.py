"""Real threads, released together."""

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_all_at_once(
    task: Callable[[Item], Result], items: Sequence[Item], *, threads: int | None = None
) -> list[Result]:
    """Run task(item) for every item in its own thread, released together by a barrier."""
    threads = threads or len(items)
    barrier = threading.Barrier(threads)

    def start_together(item: Item) -> Result:
        barrier.wait(timeout=30)
        return task(item)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(start_together, items))
