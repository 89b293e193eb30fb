"""JPEG 2000 header checks, read from the bytes before Pillow (OpenJPEG) decodes them: how far
its `reduce` may go, and whether the file is whole, two things OpenJPEG itself will not say.
Needs nothing from `imaging` (which imports it), only `errors`."""

from __future__ import annotations

from .errors import BadImageError


def levels(data: bytes) -> int:
    """Check a JPEG 2000 codestream is whole and return its fewest wavelet decomposition levels
    (main header COD and COC markers): how far `reduce` may go, since OpenJPEG refuses more.
    OpenJPEG fills the tiles a cut file lacks with grey and calls it a picture, so completeness
    is checked here from the headers: every tile's every part present, then EOC or the end."""
    start, end = _span(data)
    siz = start + 2
    if start < 0 or end < siz + 40 or data[siz : siz + 2] != b"\xff\x51":
        raise BadImageError("corrupt or truncated JPEG 2000 file")
    (w, h), (xt, yt), (x0, y0) = ((_u(data, siz + o, 4), _u(data, siz + o + 4, 4)) for o in (6, 22, 30))
    tiles = -(-(w - x0) // xt) * -(-(h - y0) // yt) if xt and yt and w > x0 and h > y0 else -1
    wide = _u(data, siz + 38, 2) > 256  # Csiz: COC's component index takes 2 bytes
    found, pos = [], siz
    while pos + 4 <= end and data[pos] == 0xFF and data[pos + 1] != 0x90:  # main header, up to SOT
        at = {0x52: pos + 9, 0x53: pos + 6 + wide}.get(data[pos + 1])  # COD/COC levels byte
        if at is not None and at < end:
            found.append(data[at])
        pos += 2 + max(_u(data, pos + 2, 2), 2)
    parts: dict[int, list[int]] = {}  # tile -> [parts seen, parts announced (0: not said)]
    while pos + 12 <= end and data[pos : pos + 2] == b"\xff\x90":  # SOT: Isot, Psot, TPsot, TNsot
        seen = parts.setdefault(_u(data, pos + 4, 2), [0, 0])
        seen[0], seen[1] = seen[0] + 1, max(seen[1], data[pos + 11])
        length = _u(data, pos + 6, 4)
        pos = end - 2 if length == 0 else pos + max(length, 14)  # 0: the last part, up to EOC
    whole = pos == end or data[pos : pos + 2] == b"\xff\xd9"
    if not whole or len(parts) != tiles or any(n < announced for n, announced in parts.values()):
        raise BadImageError("truncated or incomplete JPEG 2000 file")
    return min(found, default=0)


def _span(data: bytes) -> tuple[int, int]:
    """Where the codestream lies: all of a bare .j2k, else the JP2 container's jp2c box."""
    if data.startswith(b"\xff\x4f\xff\x51"):
        return 0, len(data)
    pos = 0
    while pos + 8 <= len(data):
        size, kind, head = _u(data, pos, 4), data[pos + 4 : pos + 8], 8
        if size == 1:  # a 64-bit box length follows
            size, head = _u(data, pos + 8, 8), 16
        elif size == 0:  # the last box, up to the end of the file
            size = len(data) - pos
        if kind == b"jp2c":
            return pos + head, pos + size
        if size < head:
            break
        pos += size
    return -1, -1


def _u(data: bytes, pos: int, n: int) -> int:
    return int.from_bytes(data[pos : pos + n], "big")
