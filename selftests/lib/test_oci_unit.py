from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from signcheck.clients import oci, ociimage


def test_signature_tag() -> None:
    assert oci.signature_tag("sha256:abc") == "sha256-abc.sig"
    with pytest.raises(ValueError):
        oci.signature_tag("abc")


def test_build_image_is_a_consistent_oci_image() -> None:
    config, layer, manifest, layers = ociimage.build_image("app", nonce="n1")
    assert layers == [layer]
    assert manifest["config"] == config.descriptor()
    assert manifest["layers"] == [layer.descriptor()]
    uncompressed = gzip.decompress(layer.data)
    doc = json.loads(config.data)
    assert doc["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(uncompressed)) as tar:
        assert b"nonce n1" in tar.extractfile("signcheck/app").read()  # type: ignore[union-attr]


def test_with_a_program_the_image_runs_it_from_a_shared_first_layer() -> None:
    program = b"\x7fELF pretend static binary"
    config, layer, manifest, layers = ociimage.build_image("app", "n1", program)
    other = ociimage.build_image("other", "n2", program)
    assert len(layers) == 2 and layers[1] == layer, "the unique layer stays last"
    assert other[3][0] == layers[0], "every image shares the program's layer"
    assert manifest["layers"] == [b.descriptor() for b in layers]
    doc = json.loads(config.data)
    assert doc["config"]["Entrypoint"] == [f"/{ociimage.PROGRAM}"]
    assert len(doc["rootfs"]["diff_ids"]) == 2
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layers[0].data))) as tar:
        assert tar.extractfile(ociimage.PROGRAM).read() == program  # type: ignore[union-attr]
    # Control: without a program the image is the one-layer placeholder.
    plain = json.loads(ociimage.build_image("app", "n1")[0].data)
    assert plain["config"]["Entrypoint"] == ["/bin/true"]


def test_same_nonce_same_bytes_other_nonce_other_digest() -> None:
    assert ociimage.build_image("a", "x")[1].digest == ociimage.build_image("a", "x")[1].digest
    assert ociimage.build_image("a", "x")[1].digest != ociimage.build_image("a", "y")[1].digest


def test_split_repository() -> None:
    assert oci.split_repository("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "a/b")
    with pytest.raises(ValueError):
        oci.split_repository("nohost")
