"""Image files for the readers: sizes from headers (EXIF orientation applied), discovery, pairing.

Formats that store normalized coordinates (YOLO) or none at all need each image's size in pixels.
Pillow's ``getexif()`` costs about 1 ms per file (it parses the whole EXIF block, and for PNG it
decodes the pixels to look for a late ``eXIf`` chunk), so JPEG and PNG headers are parsed here
directly: the size from SOFn / IHDR and the orientation tag from the first EXIF block. The result
matches ``ImageOps.exif_transpose(Image.open(p)).size``: orientations 5-8 swap width and height.
Other formats, or a header this parser does not understand, go through Pillow.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import Iterable

from PIL import Image as PILImage

from ..model import ImportWarning

#: Image file extensions the readers look for (lower case, with the dot).
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".jpe",
              ".dng", ".mpo", ".pgm", ".ppm", ".pbm")
_IMAGE_EXTS = frozenset(IMAGE_EXTS)

_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


class ImageProblem(Exception):
    """An image whose size cannot be read (missing, unreadable, not an image, a decompression bomb)."""


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _IMAGE_EXTS


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 of a TIFF/EXIF block, 1 when absent or unreadable."""
    if len(tiff) < 8:
        return 1
    bo = tiff[:2]
    if bo == b"II":
        e = "<"
    elif bo == b"MM":
        e = ">"
    else:
        return 1
    (ifd,) = struct.unpack_from(e + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (n,) = struct.unpack_from(e + "H", tiff, ifd)
    pos = ifd + 2
    for _ in range(n):
        if pos + 12 > len(tiff):
            return 1
        tag, typ, _count = struct.unpack_from(e + "HHI", tiff, pos)
        if tag == 0x0112:
            if typ == 3:  # SHORT
                (v,) = struct.unpack_from(e + "H", tiff, pos + 8)
            elif typ == 4:  # LONG (seen in the wild)
                (v,) = struct.unpack_from(e + "I", tiff, pos + 8)
            else:
                return 1
            return v if 1 <= v <= 8 else 1
        pos += 12
    return 1


class _Reader:
    """A window on a file: ``get(pos, n)`` returns n bytes at pos (fewer at the end of the file)."""

    __slots__ = ("f", "buf", "base")

    def __init__(self, f, head: bytes):
        self.f, self.buf, self.base = f, head, 0

    def get(self, pos: int, n: int) -> bytes:
        lo = pos - self.base
        if lo < 0 or lo + n > len(self.buf):
            self.f.seek(pos)
            self.buf, self.base = self.f.read(max(n, 65536)), pos
            lo = 0
        return self.buf[lo:lo + n]


def _jpeg_size(r: _Reader) -> tuple[int, int, int] | None:
    """(width, height, orientation) from a JPEG's markers, or None when they do not parse."""
    pos = 2
    orientation = None
    while True:
        head = r.get(pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA) or len(head) < 4:  # end of image / start of scan before a frame header
            return None
        (length,) = struct.unpack_from(">H", head, 2)
        if length < 2:
            return None
        if marker in _SOF:
            seg = r.get(pos + 4, 5)
            if len(seg) < 5:
                return None
            h, w = struct.unpack_from(">HH", seg, 1)
            return w, h, orientation or 1
        if marker == 0xE1 and orientation is None:
            seg = r.get(pos + 4, length - 2)
            if seg[:6] == b"Exif\0\0":
                orientation = _tiff_orientation(seg[6:])
        pos += 2 + length


def _png_size(r: _Reader) -> tuple[int, int, int] | None:
    head = r.get(0, 24)
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", head, 16)
    orientation = 1
    # An eXIf chunk, if any, comes before the first IDAT (PNG 1.5 extension); look for it there.
    pos = 8
    while True:
        chunk = r.get(pos, 8)
        if len(chunk) < 8:
            break
        length, ctype = struct.unpack_from(">I4s", chunk)
        if ctype in (b"IDAT", b"IEND"):
            break
        if ctype == b"eXIf":
            data = r.get(pos + 8, length)
            if data[:6] == b"Exif\0\0":
                data = data[6:]
            orientation = _tiff_orientation(data)
            break
        pos += 12 + length
    return w, h, orientation


def shown_size(im: PILImage.Image) -> tuple[int, int]:
    """(width, height) of a picture Pillow has opened (its header read), as shown: after its EXIF
    orientation, as ``ImageOps.exif_transpose`` gives it once loaded.

    Pillow gives a TIFF's size as shown already (and applies its orientation when it loads it):
    swapping that again made a rotated TIFF portrait for landscape."""
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation not in (5, 6, 7, 8):
        return w, h
    tags = getattr(im, "tag_v2", None)  # a TIFF's own width and length, as stored
    if tags is not None and (tags.get(256), tags.get(257)) == (h, w):
        return w, h
    return h, w


def _pillow_size(path: str) -> tuple[int, int]:
    try:
        with PILImage.open(path) as im:
            return shown_size(im)
    except PILImage.DecompressionBombError as e:
        raise ImageProblem(f"refused: decompression bomb ({e})") from None
    except FileNotFoundError:
        raise ImageProblem("image file missing") from None
    except Exception as e:
        raise ImageProblem(f"unreadable image ({e})") from None


#: What a path that is not a regular file is, by its stat type (an image is never any of these).
_NOT_A_FILE = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a device",
               stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


class NotAFile(ImageProblem):
    """The path is there but is no regular file (a folder, a named pipe, a device): ``kind`` says which."""

    def __init__(self, kind: str):
        super().__init__(f"is {kind}, not an image")
        self.kind = kind


def open_image_file(path: str):
    """``path`` opened for reading in binary, refused (NotAFile) unless it is a regular file. Opened
    without blocking: a named pipe opened for reading waits for a writer, for ever (an import, and
    the review screen's decode of every other picture, stopped there). OSErrors pass through."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise NotAFile(_NOT_A_FILE.get(kind, "not a regular file"))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed, i.e. after EXIF orientation; raises ImageProblem."""
    path = os.fspath(path)
    try:
        with open_image_file(path) as f:
            head = f.read(65536)
            if head[:2] == b"\xff\xd8":
                got = _jpeg_size(_Reader(f, head))
            elif head[:8] == _PNG_SIG:
                got = _png_size(_Reader(f, head))
            else:
                got = None
    except FileNotFoundError:
        raise ImageProblem("image file missing") from None
    except IsADirectoryError:
        raise ImageProblem("is a folder, not an image") from None
    except OSError as e:
        raise ImageProblem(f"cannot read ({e.strerror or e})") from None
    except struct.error:
        got = None
    if got is None:
        return _pillow_size(path)
    w, h, orientation = got
    if w <= 0 or h <= 0:
        return _pillow_size(path)
    limit = PILImage.MAX_IMAGE_PIXELS
    if limit and w * h > 2 * limit:
        raise ImageProblem(f"refused: {w}x{h} pixels looks like a decompression bomb")
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return w, h


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden: it starts with '.', the names Python's glob passes
    over (and so Ultralytics, which finds a folder's images with it). The readers skip such files in
    the folders they walk, and say so (``hidden_warnings``); a file an annotation file names is read."""
    return name.startswith(".")


def is_appledouble(name: str) -> bool:
    """A macOS AppleDouble file: '._' + the name of the file beside it (Finder metadata, written next to
    every file copied from a Mac disk onto one that cannot hold it; never an image or a label)."""
    return name.startswith("._")


#: What every skipped hidden file is said to be; a reader adds how to get it imported.
HIDDEN_SKIPPED = "hidden file (its name starts with '.'): skipped"


def hidden_warnings(files: Iterable[tuple[str, str]], where: str) -> list[ImportWarning]:
    """The warnings for hidden files a reader passed over, given as (path shown, what follows
    ``HIDDEN_SKIPPED`` for it): one per file, in the order given, then one at ``where`` counting the
    AppleDouble files among them (thousands of them beside a dataset copied from a Mac), the first in
    sorted order named as an example."""
    out: list[ImportWarning] = []
    apple: list[str] = []
    for shown, how in files:
        if is_appledouble(shown.rsplit("/", 1)[-1]):
            apple.append(shown)
        else:
            out.append(ImportWarning(shown, HIDDEN_SKIPPED + how, "skipped"))
    if apple:
        out.append(ImportWarning(where, f"{len(apple)} macOS AppleDouble file(s) ('._' + a file's name: Finder "
                                 f"metadata, not images or labels) skipped, e.g. {min(apple)}", "skipped"))
    return out


def walk_files(root: str | os.PathLike, hidden: list[str] | None = None) -> list[str]:
    """Every file under ``root`` (paths relative to it, '/'-separated, sorted); hidden entries skipped,
    as Python's glob skips them (and so Ultralytics, which finds a folder's images with it). ``hidden``
    collects the hidden files met (not what hidden folders hold: they are not looked into)."""
    root = os.fspath(root)
    out: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with it:
            for e in it:
                if is_hidden(e.name):
                    if hidden is not None and e.name not in (".", ".."):
                        try:
                            if e.is_file():
                                hidden.append(f"{rel}/{e.name}" if rel else e.name)
                        except OSError:
                            pass
                    continue
                r = f"{rel}/{e.name}" if rel else e.name
                try:
                    if e.is_dir():
                        stack.append(r)
                    elif e.is_file():
                        out.append(r)
                except OSError:
                    continue
    out.sort()
    return out


def rel_posix(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` with '/' separators (may start with '..' if outside)."""
    return Path(os.path.relpath(path, root)).as_posix()


def is_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file; false for a name the system cannot look up (longer than a file
    name may be: ENAMETOOLONG, which ``Path.is_file`` raises)."""
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def escapes_root(root_real: str, file_name: str) -> bool:
    """Whether an image file name leaves the image root ``root_real`` (already resolved): the store's
    rule, which drops such images (an absolute path, ``..`` or a symbolic link out of the root)."""
    if not file_name or "\0" in file_name or os.path.isabs(file_name) or file_name.startswith("\\"):
        return True
    real = os.path.realpath(os.path.join(root_real, file_name))
    return not (real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep))


__all__ = ["IMAGE_EXTS", "ImageProblem", "NotAFile", "open_image_file", "image_size", "shown_size", "is_image_name", "walk_files", "rel_posix",
           "escapes_root", "is_file", "is_hidden", "is_appledouble", "hidden_warnings", "HIDDEN_SKIPPED"]
