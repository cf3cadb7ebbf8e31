"""QR code content and rendering (PNG via Pillow, SVG path image), cached in memory per URL.

Content (:func:`qr_content`): an object identified by a GS1 key gets its **GS1 Digital Link URI** on
``PUBLIC_BASE_URL`` (``{base}/01/<GTIN>/21/<serial>``: any GS1 scanner app resolves it, and our resolver
answers it); an object with only an ``88.x.y/suffix`` identifier (a coil certificate) gets
``{base}/id/{identifier}``.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import qrcode
import qrcode.image.svg

from provenance.digital_link import digital_link_for_key

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def qr_content(base_url: str, identifier: str, gs1_key: str | None = None) -> str:
    """URL a QR code encodes: the Digital Link URI of ``gs1_key`` (a canonical ``https://id.gs1.org/…`` EPC
    key with a primary key we resolve) on ``base_url``, else ``{base_url}/id/{identifier}``."""
    if gs1_key is not None:
        uri = digital_link_for_key(gs1_key, base_url)
        if uri is not None:
            return uri
    return f"{base_url.rstrip('/')}/id/{quote(identifier, safe='/')}"


def render_qr(url: str, fmt: str) -> bytes:
    """Render ``url`` as a QR code; ``fmt`` is ``"png"`` or ``"svg"``. Error correction M, border 4."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    qr.add_data(url)
    qr.make(fit=True)
    if fmt == "svg":
        return qr.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string()
    if fmt == "png":
        buf = io.BytesIO()
        qr.make_image().save(buf, format="PNG")
        return buf.getvalue()
    raise ValueError(f"unknown QR format {fmt!r}")


def cached_qr(cache: dict[tuple[str, str], bytes], url: str, fmt: str) -> bytes:
    """``render_qr`` memoised in ``cache`` (images of a URL never change)."""
    key = (url, fmt)
    data = cache.get(key)
    if data is None:
        data = render_qr(url, fmt)
        cache[key] = data
    return data
