"""QR code rendering (PNG via Pillow, SVG path image), cached in memory per URL (bounded LRU)."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg

from api.caches import BoundedCache

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


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


def cached_qr(cache: BoundedCache[bytes] | dict[tuple[str, str], bytes], url: str, fmt: str) -> bytes:
    """``render_qr`` memoised in ``cache`` (images of a URL never change); the app passes a
    :class:`api.caches.BoundedCache` (LRU of ``TRACELEDGER_QR_CACHE_ENTRIES`` images)."""
    key = (url, fmt)
    data = cache.get(key)
    if data is None:
        data = render_qr(url, fmt)
        cache[key] = data
    return data
