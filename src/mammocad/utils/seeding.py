"""Randomness from an explicit seed: independent streams keyed by names and numbers.

Every random draw in mammocad comes from a generator made here, from the user's ``seed`` and
keys that say what the stream is for (an image id, a sub-dataset name, an epoch and a sample
index...). The same seed and keys give the same stream whatever the processing order or the
number of workers; different keys give statistically independent streams
(``numpy.random.SeedSequence`` spawn keys). String keys enter as their CRC-32.
"""

from __future__ import annotations

import zlib

import numpy as np

Key = int | str


def _key(key: Key) -> int:
    return zlib.crc32(key.encode()) if isinstance(key, str) else int(key)


def seed_sequence(seed: int, *keys: Key) -> np.random.SeedSequence:
    """The SeedSequence of stream ``keys`` under ``seed`` (the child ``keys`` of ``seed``)."""
    return np.random.SeedSequence(seed, spawn_key=tuple(_key(k) for k in keys))


def generator(seed: int, *keys: Key) -> np.random.Generator:
    """A NumPy generator for stream ``keys`` under ``seed``."""
    return np.random.default_rng(seed_sequence(seed, *keys))


def derived_seed(seed: int, *keys: Key) -> int:
    """A 32-bit integer seed for stream ``keys`` under ``seed`` (for libraries that take an int)."""
    return int(seed_sequence(seed, *keys).generate_state(1)[0])
