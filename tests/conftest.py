"""Shared fixtures. Real data lives in ../shared/data (research licences): read in place, never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("browser",)  # the headless-chromium `browser` fixture (tests/browser.py)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (licensed data is never shipped with mammocad)")
    return path


@pytest.fixture
def cbis_csv_dir() -> Path:
    return _shared("cbis-ddsm/csv")


@pytest.fixture
def cbis_samples() -> Path:
    return _shared("cbis-ddsm/samples")


@pytest.fixture
def mias_dir() -> Path:
    return _shared("mini-mias-dev")


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """A tiny synthetic CBIS-DDSM (6 patients, 384x288 mammograms), generated once per test session.

    Read-only for tests: a test that alters files copies it first.
    """
    from mammocad.data.synthetic import SynthConfig, generate_cbis_ddsm

    out = tmp_path_factory.mktemp("synth_small")
    generate_cbis_ddsm(out, SynthConfig(patients=6, seed=1, image_rows=384, image_cols=288), progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_small(synth_small: Path, tmp_path_factory) -> Path:
    """``synth_small`` run through `mammocad prepare` (default settings, full resolution). Read-only."""
    from mammocad.preprocess.pipeline import PreprocessConfig
    from mammocad.preprocess.prepare import PrepareJob, run_prepare

    out = tmp_path_factory.mktemp("prepared_small")
    summary = run_prepare(PrepareJob(source=synth_small, out=out, workers=2, figures=1), PreprocessConfig(),
                          progress=False)
    assert not summary.failures, summary.failures
    return out
