"""Run a per-item function over many items in worker processes, tolerating bad items.

Each item either succeeds (its result is yielded) or raises :class:`DataError`, which is
collected as a :class:`Failure` and reported at the end; the other items still run. Any other
exception is a bug and propagates. Results stream back in completion order so memory stays
bounded by the number of workers, not by the number of items.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

from mammocad.utils.errors import DataError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Failure:
    item: str
    path: str | None
    problem: str

    def __str__(self) -> str:
        where = self.path or self.item
        return f"{where}: {self.problem}"


def _call(fn: Callable[[T], R], item: T) -> tuple[bool, object]:
    try:
        return True, fn(item)
    except DataError as err:
        return False, (err.path, err.problem)


def map_items(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    name: Callable[[T], str] = str,
    desc: str = "",
    failures: list[Failure] | None = None,
    progress: bool = True,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, appending each :class:`DataError` to ``failures``.

    ``workers <= 1`` runs in this process (easy to debug, no pickling). Otherwise a process
    pool with at most ``2 * workers`` items in flight: a lazy ``items`` iterable is consumed
    only as fast as workers finish, so a large dataset never sits in memory at once.
    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one).
    """
    items = list(items) if not hasattr(items, "__len__") else items
    total = len(items)  # type: ignore[arg-type]
    failures = failures if failures is not None else []
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="item", dynamic_ncols=True)

    def record(item: T, ok: bool, value: object) -> Iterator[R]:
        bar.update(1)
        if ok:
            yield value  # type: ignore[misc]
        else:
            path, problem = value  # type: ignore[misc]
            failures.append(Failure(name(item), path, problem))

    try:
        if workers <= 1:
            for item in items:
                yield from record(item, *_call(fn, item))
            return
        # "spawn" would re-import torch etc. in every worker; fork is cheap and we hold no threads yet.
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            pending: dict[cf.Future, T] = {}
            it = iter(items)
            for item in it:
                pending[pool.submit(_call, fn, item)] = item
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    yield from record(item, *fut.result())
                    for nxt in it:  # top up the window by one item
                        pending[pool.submit(_call, fn, nxt)] = nxt
                        break
    finally:
        bar.close()
