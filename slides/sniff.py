"""Say what a file is when OpenSlide will not open it, from its header only (no pixel is decoded)."""

from __future__ import annotations

import warnings
from pathlib import Path

import tifffile
from PIL import Image

_UPLOAD_ORIGINAL = "upload the scanner's original slide file (SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM WSI, …)"

_DICOM_SOP_CLASSES = {
    b"1.2.840.10008.5.1.4.1.1.77.1.6": "VL Whole Slide Microscopy image",
    b"1.2.840.10008.5.1.4.1.1.7": "Secondary Capture image",
    b"1.2.840.10008.5.1.4.1.1.91.1": "Microscopy Bulk Simple Annotations",
    b"1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic image",
    b"1.2.840.10008.5.1.4.1.1.77.1.3": "VL Slide-Coordinates Microscopic image",
    b"1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
}


def _picture(path: Path, kind: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # parses the header only
                size = f", {im.width}×{im.height} px"
    except Image.DecompressionBombError:
        size = ", a very large picture"
    except (OSError, SyntaxError, ValueError):
        size = ""
    return f"not a whole-slide image: {kind} picture{size}; {_UPLOAD_ORIGINAL}"


def _tiff(path: Path, openslide_error: str | None) -> str:
    try:
        with tifffile.TiffFile(path) as tif:  # reads the directories, not the pixels
            pages = list(tif.pages)
            first = pages[0]
            shape = f"{first.imagewidth}×{first.imagelength} px"
            tiled = any(getattr(p, "is_tiled", False) for p in pages)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as e:
        return f"damaged TIFF file ({e}); upload the file again or the scanner's original"
    if not tiled:
        return (
            f"not a whole-slide image: plain (non-tiled) TIFF, {shape}; slides must be tiled, pyramidal "
            f"files — {_UPLOAD_ORIGINAL}, or convert it to a tiled pyramidal TIFF"
            " (e.g. `vips tiffsave in.tif out.tif --tile --pyramid --compression jpeg`)"
        )
    detail = f" ({openslide_error})" if openslide_error else ""
    return f"tiled TIFF ({shape}) that OpenSlide cannot read{detail}; {_UPLOAD_ORIGINAL}"


def _dicom_sop_class(head: bytes) -> bytes | None:
    """SOP Class UID of a DICOM file: (0002,0002) from the file meta header, else (0008,0016)."""
    searches = [(b"\x02\x00\x02\x00", 132)] if head[128:132] == b"DICM" else []
    for tag, origin in [*searches, (b"\x08\x00\x16\x00", 0)]:
        at = head.find(tag, origin)
        if at < 0:
            continue
        if head[at + 4 : at + 6] == b"UI":  # explicit VR: 2-byte length
            length, start = int.from_bytes(head[at + 6 : at + 8], "little"), at + 8
        else:  # implicit VR (headerless ACR-NEMA style files): 4-byte length
            length, start = int.from_bytes(head[at + 4 : at + 8], "little"), at + 8
        return head[start : start + min(length, 64)].rstrip(b"\x00 ")
    return None


def _looks_like_dicom(head: bytes) -> bool:
    return head[128:132] == b"DICM" or (head.startswith(b"\x08\x00") and b"\x08\x00\x16\x00" in head)


def _dicom(head: bytes) -> str:
    name = _DICOM_SOP_CLASSES.get(_dicom_sop_class(head) or b"")
    if name == "VL Whole Slide Microscopy image":
        return (
            "DICOM whole-slide image that OpenSlide cannot open; keep each series in its own folder "
            "and check that all of its instance files were uploaded"
        )
    kind = f"DICOM {name}" if name else "a DICOM file of another kind"
    return f"not a whole-slide image: {kind}; {_UPLOAD_ORIGINAL}"


def describe_unsupported(path: Path, openslide_error: str | None = None) -> str:
    """A person-readable reason why ``path`` (an existing, non-empty file) is not a slide we can serve.

    openslide_error: OpenSlide's own message, shown where it helps (a damaged file of a known format).
    """
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _picture(path, "PNG")
    if head.startswith(b"\xff\xd8\xff"):
        return _picture(path, "JPEG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _picture(path, "GIF")
    if head.startswith(b"BM"):
        return _picture(path, "BMP")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _picture(path, "WebP")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(path, openslide_error)
    if _looks_like_dicom(head):
        return _dicom(head)
    if head.startswith(b"%PDF"):
        return f"not a whole-slide image: a PDF document; {_UPLOAD_ORIGINAL}"
    if head.startswith(b"PK\x03\x04"):
        return f"not a whole-slide image: a ZIP archive; unpack it and {_UPLOAD_ORIGINAL}"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"not a whole-slide image: a text file; {_UPLOAD_ORIGINAL}"
    detail = f" ({openslide_error})" if openslide_error else ""
    return f"unsupported or unrecognised file format{detail}; {_UPLOAD_ORIGINAL}"
