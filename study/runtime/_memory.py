"""This machine's memory, and whether a data set's images fit in it (refused before any is read)."""

from __future__ import annotations

import os

from study.runtime._errors import StudyError


def memory_bytes() -> int:
    """This machine's physical memory in bytes (1 TiB where the system does not say).

    Example:
        >>> memory_bytes() > 2**20
        True
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a bound no real run reaches
        return 2**40



# The run holds every image as uint8 and, while it trains, as float32 (the preprocessed copy): 5 bytes.
BYTES_PER_IMAGE_VALUE = 1 + 4



def images_fit(count: int, image_size: int, source: str) -> None:
    """Refuse a data set whose images could not be held in this machine's memory (a StudyError that
    says how much they need), before any of them is read or generated.

    Example:
        >>> images_fit(3670, 224, "--dataset tf_flowers")
        >>> images_fit(10**6, 1024, "--synthetic-size 1000000")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        study.runtime.StudyError: --synthetic-size 1000000: 1000000 images at --image-size 1024 need about 14.3 TiB ...
    """
    needed = count * image_size * image_size * 3 * BYTES_PER_IMAGE_VALUE
    if needed > memory_bytes():
        raise StudyError(
            f"{source}: {count} images at --image-size {image_size} need about {_size(needed)} of memory "
            f"(uint8 and float32 copies), more than this machine's {_size(memory_bytes())}; "
            "use fewer or smaller images"
        )



def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1024
    raise AssertionError("unreachable")
