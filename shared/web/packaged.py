"""Files this package ships under shared/static/, served by both twins' page routes."""

from collections.abc import Mapping
from functools import cache
from importlib.resources import files


def packaged_asset(
    folder: str, media_types: Mapping[str, str], name: str
) -> tuple[bytes, str] | None:
    """The bytes and media type of ``name`` in ``shared/static/<folder>``; None for any name
    not in ``media_types``, a fixed list: no path from a request ever reaches the filesystem."""
    media_type = media_types.get(name)
    if media_type is None:
        return None  # checked before the cache, so unknown names cannot fill it
    return read_packaged(folder, name), media_type


@cache
def read_packaged(folder: str, name: str) -> bytes:
    return (files("shared") / "static" / folder / name).read_bytes()
