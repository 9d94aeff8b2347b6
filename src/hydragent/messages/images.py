"""Image parts in each provider's form: OpenAI data URLs, Bedrock Converse blocks, PIL for
local processors. An image's format is detected here once, from its bytes."""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Mapping
from typing import Any

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def detected_format(data: bytes) -> str | None:
    """png, jpeg, gif or webp, read from the bytes' signature; None when it is none of them."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for magic, name in _IMAGE_SIGNATURES if data.startswith(magic)), None)


def image_format(data: bytes) -> str:
    """The format of an image's bytes, png when unknown (a data URL's media type)."""
    return detected_format(data) or "png"


def _is_remote(image: Any) -> bool:
    return isinstance(image, str) and image.startswith(("http://", "https://"))


def image_bytes(image: Any) -> bytes:
    """The encoded bytes of an image given as bytes, a file path, a PIL image, a data URL or
    base64 text. Remote URLs are not fetched: a caller that can pass a URL on checks first."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if hasattr(image, "save"):  # a PIL.Image, without importing PIL
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    maybe_path = isinstance(image, os.PathLike) or (isinstance(image, str) and len(image) < 4096)
    if maybe_path and os.path.isfile(image):
        with open(image, "rb") as handle:
            return handle.read()
    if isinstance(image, str):
        if _is_remote(image):
            raise ValueError(
                f"this backend cannot fetch image URLs ({image[:80]}); pass the image's bytes, "
                "a file path or a PIL image instead"
            )
        encoded = image.split(",", 1)[1] if image.startswith("data:") else image
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(
                f"image text is neither a file, a URL, a data URL nor base64: {image[:80]!r}"
            ) from None
    raise ValueError(
        f"cannot read an image from {type(image).__name__}; "
        "valid: bytes, a path, a PIL image, a data URL or base64 text"
    )


def image_data_url(image: Any) -> str:
    """A URL for providers that take them: http(s) and data URLs as they are, anything else
    as a base64 data URL with its real media type."""
    if isinstance(image, str) and (_is_remote(image) or image.startswith("data:")):
        return image
    data = image_bytes(image)
    return f"data:image/{image_format(data)};base64,{base64.b64encode(data).decode()}"


def _image_of(part: Mapping[str, Any]) -> Any:
    """The image of an `image` part, or the URL of an `image_url` part."""
    if part.get("type") == "image_url":
        url = part["image_url"]
        return url["url"] if isinstance(url, Mapping) else url
    return part["image"]


def openai_image_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image part as OpenAI chat completions take it (`image_url` with a URL or data URL);
    an `image_url` part's `detail` is kept."""
    url: dict[str, Any] = {"url": image_data_url(_image_of(part))}
    if part.get("type") == "image_url" and isinstance(part["image_url"], Mapping):
        url.update({k: v for k, v in part["image_url"].items() if k != "url"})
    return {"type": "image_url", "image_url": url}


def bedrock_image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image part as a Bedrock Converse content block: raw bytes and their format.
    `s3://` URIs become an S3 location; http(s) URLs are refused (Converse cannot fetch them)."""
    image = _image_of(part)
    if isinstance(image, str) and image.startswith("s3://"):
        suffix = image.rsplit(".", 1)[-1].lower()
        fmt = {"jpg": "jpeg"}.get(suffix, suffix)
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": image}}}}
    data = image_bytes(image)
    kind = detected_format(data)
    if kind is None:
        raise ValueError("Bedrock Converse takes PNG, JPEG, GIF or WebP images")
    return {"image": {"format": kind, "source": {"bytes": data}}}


def load_pil_image(image: Any) -> Any:
    """A PIL image from any image form (remote URLs through transformers' loader), for local
    processors."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if _is_remote(image):
        from transformers.image_utils import load_image

        return load_image(image)
    return Image.open(io.BytesIO(image_bytes(image)))


def convert_image_part(part: dict[str, Any], as_url: bool) -> dict[str, Any]:
    """`image_url` parts with a URL, or `image` parts with base64 text (URLs kept as URLs)."""
    if as_url:
        return openai_image_part(part)
    image = _image_of(part)
    if isinstance(image, str) and _is_remote(image):
        return {"type": "image", "image": image}
    return {"type": "image", "image": base64.b64encode(image_bytes(image)).decode()}
