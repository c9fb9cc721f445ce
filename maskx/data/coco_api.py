"""pycocotools objects built in memory and without pycocotools' progress prints."""

from __future__ import annotations

import contextlib
import io

from pycocotools.coco import COCO


def quiet() -> contextlib.AbstractContextManager:
    """Swallow stdout: pycocotools prints progress for every index build and evaluation."""
    return contextlib.redirect_stdout(io.StringIO())


def build_coco(dataset: dict) -> COCO:
    """A ``COCO`` object over an already loaded (and validated) dataset dict."""
    coco = COCO()
    coco.dataset = dataset
    with quiet():
        coco.createIndex()
    return coco
