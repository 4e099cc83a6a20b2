"""Image files: a file that is not what its name says is one line naming it, with no library hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.utils.errors import DataError
from mammocad.utils.imageio import image_shape, read_dicom_header, read_image


@pytest.mark.parametrize("content", [b"", b"not a dicom at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200])
@pytest.mark.parametrize("reader", [read_image, read_dicom_header, image_shape])
def test_non_dicom_with_dcm_name_is_one_clean_line(tmp_path: Path, content: bytes, reader):
    path = tmp_path / "000000.dcm"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        reader(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a readable DICOM file") and "DICOM file header" in message
    assert "force" not in message and "\n" not in message
