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
    config, layer, manifest = ociimage.build_image("app", nonce="n1")
    assert manifest["config"] == config.descriptor()
    assert manifest["layers"] == [layer.descriptor()]
    uncompressed = gzip.decompress(layer.data)
    doc = json.loads(config.data)
    assert doc["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(uncompressed)) as tar:
        assert b"nonce n1" in tar.extractfile("signcheck/app").read()  # type: ignore[union-attr]


def test_same_nonce_same_bytes_other_nonce_other_digest() -> None:
    assert ociimage.build_image("a", "x")[1].digest == ociimage.build_image("a", "x")[1].digest
    assert ociimage.build_image("a", "x")[1].digest != ociimage.build_image("a", "y")[1].digest


def test_split_repository() -> None:
    assert oci.split_repository("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "a/b")
    with pytest.raises(ValueError):
        oci.split_repository("nohost")
