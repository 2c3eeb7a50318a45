"""Self-tests of ``tests.harness``: pure helpers first, then the real registry and clients.

The end-to-end tests (marked ``e2e``) start ``docker-registry``, ``skopeo`` and a
private ``containerd``; without those binaries they skip, or fail when ``CI=true``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import require_binary, require_root
from tests.harness.clients import Containerd, Result, Skopeo, containerd_config
from tests.harness.ociimage import (
    MANIFEST_MEDIA_TYPE,
    PAYLOAD_PATH,
    OciImage,
    write_oci_archive,
    write_oci_image,
)
from tests.harness.ports import free_port, wait_for_http
from tests.harness.registry import (
    RegistryError,
    RegistryServer,
    deep_merge,
    write_htpasswd,
)

ALICE = ("alice", "alice-secret")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_files(image: OciImage) -> dict[str, bytes]:
    """Regular files inside the image's only layer."""
    layer = gzip.decompress(image.blob_path(image.layer_digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        return {member.name: tar.extractfile(member).read() for member in members}


# --- ports ---------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_http_times_out_when_nothing_listens() -> None:
    with pytest.raises(TimeoutError, match="no HTTP answer"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.2)


def test_wait_for_http_gives_up_when_the_check_raises() -> None:
    def process_died() -> None:
        raise RuntimeError("process died")

    with pytest.raises(RuntimeError, match="process died"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=5, check=process_died)


# --- ociimage ------------------------------------------------------------------------


def test_image_with_a_payload_is_deterministic(tmp_path: Path) -> None:
    first = write_oci_image(tmp_path / "a", payload=b"same")
    second = write_oci_image(tmp_path / "b", payload=b"same")
    assert first.manifest_digest == second.manifest_digest
    assert (first.dir / "index.json").read_bytes() == (second.dir / "index.json").read_bytes()


def test_images_without_a_payload_are_unique(tmp_path: Path) -> None:
    first = write_oci_image(tmp_path / "a")
    second = write_oci_image(tmp_path / "b")
    assert first.manifest_digest != second.manifest_digest


def test_blobs_are_named_by_their_sha256(tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "img", payload=b"x")
    blobs = sorted(image.blobs_dir.iterdir())
    assert len(blobs) == 3
    for blob in blobs:
        assert _sha256(blob.read_bytes()) == f"sha256:{blob.name}"


def test_index_names_the_manifest_by_tag(tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "img", tag="v1", payload=b"x")
    index = json.loads((image.dir / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == image.manifest_digest
    assert entry["mediaType"] == MANIFEST_MEDIA_TYPE
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    assert json.loads((image.dir / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_config_describes_linux_amd64_and_the_layer(tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "img", payload=b"x")
    manifest = json.loads(image.manifest_path.read_text())
    config = json.loads(image.blob_path(image.config_digest).read_text())
    assert manifest["config"]["digest"] == image.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == [image.layer_digest]
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    uncompressed = gzip.decompress(image.blob_path(image.layer_digest).read_bytes())
    assert config["rootfs"]["diff_ids"] == [_sha256(uncompressed)] == [image.diff_id]


def test_layer_holds_the_payload_file(tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "img", payload=b"hello\n")
    assert _layer_files(image) == {PAYLOAD_PATH: b"hello\n"}


def test_archive_holds_the_layout(tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "img", payload=b"x")
    archive = write_oci_archive(image.dir, tmp_path / "img.tar")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    blob_names = {f"blobs/sha256/{blob.name}" for blob in image.blobs_dir.iterdir()}
    assert {"oci-layout", "index.json"} | blob_names <= names


# --- registry config, clients, require_binary ---------------------------------------


def test_deep_merge_merges_nested_sections() -> None:
    base = {"http": {"addr": "a", "secret": "s"}, "log": {"level": "info"}}
    merged = deep_merge(base, {"http": {"addr": "b"}, "auth": {"htpasswd": {"path": "p"}}})
    assert merged == {
        "http": {"addr": "b", "secret": "s"},
        "log": {"level": "info"},
        "auth": {"htpasswd": {"path": "p"}},
    }
    assert base["http"]["addr"] == "a"


def test_htpasswd_file_has_2y_bcrypt_entries_and_mode_0640(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw"})
    user, hashed = path.read_text().strip().split(":", 1)
    assert (user, hashed[:4]) == ("alice", "$2y$")
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "stderr",
    [
        "reading manifest 1 in 127.0.0.1:5000/a/b: unauthorized: authentication required",
        "requested access to the resource is denied",
        "failed with status code [manifests 1]: 401 Unauthorized",
        "unexpected status: 403 Forbidden",
    ],
)
def test_result_recognises_auth_refusals(stderr: str) -> None:
    assert Result(False, 1, "", stderr).auth_refused


def test_result_does_not_call_other_failures_auth_refusals() -> None:
    result = Result(False, 1, "", "manifest unknown: manifest unknown")
    assert result.not_found
    assert not result.auth_refused
    assert not Result(True, 0, "", "401").auth_refused


def test_result_description_hides_passwords() -> None:
    result = Result(False, 1, "", "", ("skopeo", "inspect", "--creds", "alice:s3cret", "docker://x"))
    assert "alice:***" in result.describe()
    assert "s3cret" not in result.describe()


def test_containerd_config_keeps_everything_in_its_directory() -> None:
    config = containerd_config(Path("/tmp/ctd-test"))
    assert "/run/containerd" not in config
    assert 'address = "/tmp/ctd-test/containerd.sock"' in config
    assert "io.containerd.internal.v1.opt" in config


def test_require_binary_returns_the_path_of_a_present_binary() -> None:
    assert require_binary("sh").endswith("/sh")


def test_require_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool"):
        require_binary("no-such-tool")


def test_require_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary("no-such-tool")


# --- end to end against the real registry --------------------------------------------


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    """A registry without authentication."""
    require_binary("docker-registry")
    with RegistryServer() as server:
        yield server


@pytest.fixture
def skopeo(registry: RegistryServer) -> Skopeo:
    require_binary("skopeo")
    return Skopeo(registry.host)


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    require_binary("containerd")
    require_binary("ctr")
    require_root()
    with Containerd() as daemon:
        yield daemon


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_image(tmp_path / "image")


@pytest.mark.e2e
def test_registry_reports_an_early_exit_with_its_log() -> None:
    require_binary("docker-registry")
    server = RegistryServer({"storage": {"no-such-driver": {}}})
    try:
        with pytest.raises(RegistryError, match="exited early") as error:
            server.start()
    finally:
        server.close()
    assert "no-such-driver" in str(error.value)


@pytest.mark.e2e
def test_skopeo_pushes_inspects_copies_back_and_deletes(skopeo: Skopeo, image: OciImage, tmp_path: Path) -> None:
    skopeo.copy_to(image.dir, "team/app", "v1").check()

    inspected = skopeo.inspect("team/app", "v1").check().json()
    assert inspected["Digest"] == image.manifest_digest
    assert (inspected["Architecture"], inspected["Os"]) == ("amd64", "linux")

    skopeo.copy_from("team/app", "v1", tmp_path / "back").check()
    back = json.loads((tmp_path / "back" / "index.json").read_text())
    assert back["manifests"][0]["digest"] == image.manifest_digest

    skopeo.delete("team/app", "v1").check()
    gone = skopeo.inspect("team/app", "v1")
    assert not gone.ok
    assert gone.not_found, gone.describe()


@pytest.mark.e2e
def test_containerd_pulls_and_pushes_under_another_name(
    registry: RegistryServer, skopeo: Skopeo, containerd: Containerd, image: OciImage
) -> None:
    skopeo.copy_to(image, "team/app", "v1").check()

    containerd.pull(f"{registry.host}/team/app:v1").check()
    assert f"{registry.host}/team/app:v1" in containerd.images()
    containerd.push(f"{registry.host}/other/copy:v2", local_ref=f"{registry.host}/team/app:v1").check()

    assert skopeo.inspect("other/copy", "v2").check().json()["Digest"] == image.manifest_digest


@pytest.mark.e2e
def test_containerd_pushes_an_image_written_by_the_harness(
    registry: RegistryServer, skopeo: Skopeo, containerd: Containerd, image: OciImage
) -> None:
    containerd.load_image(image, f"{registry.host}/team/loaded:v1").check()
    containerd.push(f"{registry.host}/team/loaded:v1").check()
    assert skopeo.inspect("team/loaded", "v1").check().json()["Digest"] == image.manifest_digest


@pytest.fixture
def htpasswd_registry() -> Iterator[RegistryServer]:
    """A registry where only alice (htpasswd, bcrypt) may do anything."""
    require_binary("docker-registry")
    server = RegistryServer()
    path = write_htpasswd(server.workdir / "htpasswd", dict([ALICE]))
    server.config["auth"] = {"htpasswd": {"realm": "harness", "path": str(path)}}
    with server:
        yield server


@pytest.mark.e2e
def test_htpasswd_registry_refuses_anonymous_and_wrong_password(
    htpasswd_registry: RegistryServer, image: OciImage
) -> None:
    skopeo = Skopeo(htpasswd_registry.host)
    for creds in (None, ("alice", "wrong")):
        result = skopeo.copy_to(image, "team/app", "v1", creds)
        assert result.auth_refused, result.describe()


@pytest.mark.e2e
def test_htpasswd_registry_accepts_the_right_password(htpasswd_registry: RegistryServer, image: OciImage) -> None:
    skopeo = Skopeo(htpasswd_registry.host)
    skopeo.copy_to(image, "team/app", "v1", ALICE).check()
    assert skopeo.inspect("team/app", "v1", ALICE).check().json()["Digest"] == image.manifest_digest
    assert skopeo.inspect("team/app", "v1").auth_refused


@pytest.mark.e2e
def test_containerd_sends_basic_credentials_to_htpasswd_registry(
    htpasswd_registry: RegistryServer, containerd: Containerd, image: OciImage
) -> None:
    Skopeo(htpasswd_registry.host).copy_to(image, "team/app", "v1", ALICE).check()
    ref = f"{htpasswd_registry.host}/team/app:v1"
    assert containerd.pull(ref).auth_refused
    containerd.pull(ref, ALICE).check()


@pytest.mark.e2e
def test_restart_keeps_port_and_data(registry: RegistryServer, skopeo: Skopeo, image: OciImage) -> None:
    skopeo.copy_to(image, "team/app", "v1").check()
    url = registry.url

    registry.restart()

    assert registry.url == url
    assert skopeo.inspect("team/app", "v1").check().json()["Digest"] == image.manifest_digest
    assert registry.log_text().count("harness: starting") == 2
