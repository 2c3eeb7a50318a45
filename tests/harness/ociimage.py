"""Write a tiny but valid OCI image layout, for pushing to a registry in tests.

The image has one gzip layer holding one small file. Its content (the payload)
makes each image unique; with an explicit payload the bytes, and so every digest,
are identical from run to run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "OciImage",
    "write_oci_archive",
    "write_oci_image",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
PAYLOAD_PATH = "harness/payload.txt"
# A fixed timestamp keeps tar headers and config identical between runs.
_EPOCH = 0
_CREATED = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class OciImage:
    """Where an image layout was written and the digests that identify it."""

    dir: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    diff_id: str
    payload: bytes

    @property
    def blobs_dir(self) -> Path:
        """Directory holding the sha256-named blobs."""
        return self.dir / "blobs" / "sha256"

    def blob_path(self, digest: str) -> Path:
        """Path of the blob with ``digest`` (``sha256:<hex>``)."""
        return self.blobs_dir / digest.removeprefix("sha256:")

    @property
    def manifest_path(self) -> Path:
        """Path of the manifest blob."""
        return self.blob_path(self.manifest_digest)


def _digest(data: bytes) -> str:
    """OCI digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(value: object) -> bytes:
    """Stable JSON bytes, so the same content always gives the same digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _tar_info(name: str, size: int, *, directory: bool = False) -> tarfile.TarInfo:
    """A tar header with fixed owner, mode and time."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _layer_tar(payload: bytes) -> bytes:
    """Uncompressed layer: one directory and the payload file inside it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tar_info(os.path.dirname(PAYLOAD_PATH), 0, directory=True))
        tar.addfile(_tar_info(PAYLOAD_PATH, len(payload)), io.BytesIO(payload))
    return buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    """Gzip with no file name and a zero mtime, so output is deterministic."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=_EPOCH) as stream:
        stream.write(data)
    return buffer.getvalue()


def _config(diff_id: str) -> bytes:
    """Image configuration for linux/amd64 with one layer."""
    return _canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": _CREATED,
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": _CREATED, "created_by": "tests.harness.ociimage"}],
        }
    )


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    """OCI content descriptor of ``data``."""
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _manifest(config: bytes, layer: bytes) -> bytes:
    """Image manifest referencing one config and one layer."""
    return _canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config),
            "layers": [_descriptor(LAYER_MEDIA_TYPE, layer)],
        }
    )


def _index(manifest: bytes, tag: str) -> bytes:
    """Layout index naming the manifest by ``tag``."""
    descriptor = _descriptor(MANIFEST_MEDIA_TYPE, manifest)
    descriptor["annotations"] = {REF_NAME_ANNOTATION: tag}
    descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
    return _canonical_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [descriptor]})


def _write_blob(blobs: Path, data: bytes) -> str:
    """Store ``data`` under its digest in ``blobs`` and return the digest."""
    digest = _digest(data)
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return digest


def write_oci_image(dir: Path, tag: str = "latest", payload: bytes | None = None) -> OciImage:
    """Write an OCI image layout into ``dir`` (created if needed) and describe it.

    ``payload`` becomes the content of ``harness/payload.txt`` in the only layer.
    Without it 16 random bytes (hex) are used, so each call yields a new image.
    """
    if payload is None:
        payload = os.urandom(16).hex().encode() + b"\n"
    dir = Path(dir)
    blobs = dir / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    tar = _layer_tar(payload)
    layer = _gzip(tar)
    config = _config(_digest(tar))
    manifest = _manifest(config, layer)
    for data in (layer, config, manifest):
        _write_blob(blobs, data)
    (dir / "oci-layout").write_bytes(_canonical_json({"imageLayoutVersion": "1.0.0"}))
    (dir / "index.json").write_bytes(_index(manifest, tag))
    return OciImage(
        dir=dir,
        tag=tag,
        manifest_digest=_digest(manifest),
        config_digest=_digest(config),
        layer_digest=_digest(layer),
        diff_id=_digest(tar),
        payload=payload,
    )


def _archive_members(layout: Path) -> list[Path]:
    """Files of a layout in a stable order: ``oci-layout`` and ``index.json`` first."""
    head = [layout / "oci-layout", layout / "index.json"]
    blobs = sorted((layout / "blobs").rglob("*"))
    return head + [path for path in blobs if path.is_file()]


def write_oci_archive(layout: Path, archive: Path) -> Path:
    """Pack the layout directory ``layout`` into an OCI archive tar at ``archive``.

    This is the format ``ctr images import`` and ``skopeo copy oci-archive:`` read.
    """
    layout = Path(layout)
    archive = Path(archive)
    with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_tar_info(directory, 0, directory=True))
        for path in _archive_members(layout):
            data = path.read_bytes()
            name = path.relative_to(layout).as_posix()
            tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
    return archive
