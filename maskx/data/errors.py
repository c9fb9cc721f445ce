"""The exception raised for corrupt or inconsistent annotation and results files."""

from __future__ import annotations

import os


class AnnotationError(ValueError):
    """A COCO-format file (ground truth or detection results) that cannot be used.

    ``path`` is the file, ``item`` names the offending entry (``"annotation id 17"``,
    ``"image id 3"``, ``"result 4"``) or is ``None`` for file-level problems, and
    ``reason`` says what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, item: str | None = None):
        self.path = os.fspath(path)
        self.item = item
        self.reason = reason
        where = f"{self.path}: {item}" if item else self.path
        super().__init__(f"{where}: {reason}")
