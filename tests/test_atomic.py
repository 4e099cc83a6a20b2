"""Atomic writes: the target is complete or untouched, and has the mode the user's umask gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mammocad
from mammocad.utils.atomic import atomic_path, process_umask, write_text

SRC = Path(mammocad.__file__).resolve().parents[1]

# Writes one file with every atomic writer, prints {name: permission bits}.
WRITE_ALL = """
import json, os, stat, sys
from pathlib import Path
import numpy as np, pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from mammocad.utils.atomic import atomic_path, write_csv, write_json, write_text
from mammocad.utils.imageio import write_png
from mammocad.data.synthetic import DicomHeader, write_dicom

out = Path(sys.argv[1])
write_text(out / "a.txt", "text")
write_json(out / "a.json", {"a": 1})
write_csv(out / "a.csv", pd.DataFrame({"a": [1]}))
with atomic_path(out / "raw.bin") as tmp:
    tmp.write_bytes(b"raw")
with atomic_path(out / "recreated.bin") as tmp:  # a writer that deletes and re-creates its file
    tmp.unlink()
    tmp.write_bytes(b"new")
write_png(out / "a.png", np.zeros((4, 4), np.uint16))
write_dicom(out / "a.dcm", np.zeros((4, 4), np.uint16),
            DicomHeader("P", "1.2", "1.2.3", "1.2.3.4", "full", "20200101", 1, "LEFT", "CC"))
with atomic_path(out / "figure.png") as tmp:
    plt.figure().savefig(tmp)
modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
print(json.dumps(modes))
"""


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_every_atomic_writer_honours_the_umask(tmp_path: Path, umask: int, expected: int):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", WRITE_ALL, str(tmp_path)], env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask), check=True)
    modes = json.loads(done.stdout.splitlines()[-1])
    assert len(modes) == 8
    assert {name: oct(mode) for name, mode in modes.items()} == {name: oct(expected) for name in modes}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary file left behind


def test_failed_write_leaves_the_target_untouched(tmp_path: Path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_umask_is_read_without_changing_it():
    current = os.umask(0o022)
    os.umask(current)
    process_umask.cache_clear()
    try:
        assert process_umask() == current
        assert os.umask(current) == current  # still in place
    finally:
        process_umask.cache_clear()
