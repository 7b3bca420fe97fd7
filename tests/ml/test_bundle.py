import json

import pytest

from pawhub.bundle import MAX_BUNDLE_BYTES, PSEUDO_PROGRAM, BundleError, read_bundle, write_bundle
from tests.ml.corpus import (
    BAD_MEMBERS,
    META_VALUES,
    NOT_ZIPS,
    PSEUDO,
    TEMPLATE,
    lying_size_header,
    members,
    oversized_file,
    valid_bundle,
    zip_bomb,
    zip_of,
)


def test_round_trip(tmp_path):
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF" + bytes(1000))
    path = tmp_path / "out.paw"
    write_bundle(
        path,
        meta=META_VALUES,
        adapter_path=adapter,
        prompt_template=TEMPLATE,
        pseudo_program=PSEUDO,
    )
    bundle = read_bundle(path)
    assert bundle.meta == META_VALUES
    assert bundle.meta.constraint.choices == ("hi", "hello")  # the output constraint travels
    assert bundle.adapter == adapter.read_bytes()
    assert bundle.prompt_template == TEMPLATE
    assert bundle.pseudo_program == PSEUDO


def test_writer_refuses_a_bad_template(tmp_path):
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    with pytest.raises(BundleError, match="exactly one"):
        write_bundle(
            tmp_path / "x.paw",
            meta=META_VALUES,
            adapter_path=adapter,
            prompt_template="no slot",
            pseudo_program=PSEUDO,
        )
    assert not (tmp_path / "x.paw").exists()


@pytest.mark.parametrize(
    ("contents", "extra", "message"),
    [case[1:] for case in BAD_MEMBERS],
    ids=[case[0] for case in BAD_MEMBERS],
)
def test_reader_refuses(tmp_path, contents, extra, message):
    path = zip_of(tmp_path / "program.paw", contents, extra)
    with pytest.raises(BundleError, match=message):
        read_bundle(path)


def test_reader_refuses_a_zip_bomb_before_inflating_it(tmp_path):
    path = zip_bomb(tmp_path / "bomb.paw")
    assert path.stat().st_size < 1 << 20
    with pytest.raises(BundleError, match="expands to"):
        read_bundle(path)


def test_reader_refuses_a_lying_size_header(tmp_path):
    with pytest.raises(BundleError, match="CRC"):
        read_bundle(lying_size_header(tmp_path / "liar.paw"))


def test_reader_refuses_oversized_files_without_opening_them(tmp_path):
    with pytest.raises(BundleError, match="over the"):
        read_bundle(oversized_file(tmp_path / "huge.paw", MAX_BUNDLE_BYTES))


@pytest.mark.parametrize("data", NOT_ZIPS)
def test_reader_refuses_non_zips(tmp_path, data):
    path = tmp_path / "junk.paw"
    path.write_bytes(data)
    with pytest.raises(BundleError, match="not a valid ZIP"):
        read_bundle(path)


def test_reader_refuses_a_symlinked_bundle(tmp_path):
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    link = tmp_path / "link.paw"
    link.symlink_to(valid_bundle(tmp_path / "real.paw", adapter))
    with pytest.raises(BundleError, match="regular file"):
        read_bundle(link)


def test_member_caps_are_inclusive(tmp_path):
    path = zip_of(tmp_path / "program.paw", members(**{PSEUDO_PROGRAM: b"p" * (64 * 1024)}))
    assert len(read_bundle(path).pseudo_program) == 64 * 1024


def test_a_version_1_bundle_reads_as_free(tmp_path):
    """Bundles from before output constraints have no `output`: their programs decode freely."""
    from pawhub.bundle import META
    from tests.ml.corpus import meta_with

    path = zip_of(tmp_path / "old.paw", members(**{META: meta_with(version=1, output=...)}))
    meta = read_bundle(path).meta
    assert meta.version == 1 and meta.constraint.is_free


def test_a_bundle_is_written_in_the_oldest_version_that_holds_its_output():
    from pawhub.bundle import constraint_version, version_for
    from pawhub.constraint import OutputConstraint

    assert constraint_version(OutputConstraint()) == 2
    assert constraint_version(OutputConstraint("choice", ("a", "b"))) == 2
    assert constraint_version(OutputConstraint("span")) == 2
    assert constraint_version(OutputConstraint("span", start="space")) == 3
    assert constraint_version(OutputConstraint("shape", shapes=("##",))) == 3
    # New bundles name their runtime too (version 4), whatever their output.
    for constraint in (OutputConstraint(), OutputConstraint("shape", shapes=("##",))):
        assert version_for(constraint) == 4


def test_version_4_names_the_runtime_and_older_versions_do_not(tmp_path):
    from pawhub.bundle import META
    from tests.ml.corpus import meta_with

    meta = read_bundle(zip_of(tmp_path / "v4.paw", members())).meta
    assert meta.version == 4
    assert (meta.interpreter, meta.runtime_id, meta.runtime_manifest_version) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "smollm2-135m-q4_1",
        1,
    )
    old = read_bundle(zip_of(tmp_path / "v3.paw", members(**{META: meta_with(version=3)}))).meta
    assert (old.version, old.runtime_id) == (3, "")
    for changes, message in (
        ({"runtime_id": ""}, "version 4 needs"),
        ({"version": 3, "runtime_id": "smollm2-135m-q4_1"}, "need bundle version 4"),
    ):
        raw = json.loads(meta_with())
        raw.update(changes)
        path = zip_of(tmp_path / "bad.paw", members(**{META: json.dumps(raw).encode()}))
        with pytest.raises(BundleError, match=message):
            read_bundle(path)


def test_rules_3_outputs_need_version_5_and_read_back(tmp_path):
    from pawhub.bundle import META, version_for
    from pawhub.constraint import OutputConstraint
    from tests.ml.corpus import meta_with

    bounded = OutputConstraint("span", fixed=("NONE",), max_bytes=20)
    for constraint in [bounded, OutputConstraint("words"), OutputConstraint(max_bytes=9)]:
        assert version_for(constraint) == 5
    output = bounded.to_dict()
    path = zip_of(tmp_path / "v5.paw", members(**{META: meta_with(version=5, output=output)}))
    assert read_bundle(path).meta.constraint == bounded
    # A version 3 bundle (or 2) cannot claim what only version 5 holds.
    path = zip_of(tmp_path / "v3.paw", members(**{META: meta_with(version=3, output=output)}))
    with pytest.raises(BundleError, match="output needs bundle version 5"):
        read_bundle(path)


def test_rules_4_outputs_need_version_6_and_read_back(tmp_path):
    from pawhub.bundle import META, version_for
    from pawhub.constraint import OutputConstraint
    from tests.ml.corpus import meta_with

    copied = OutputConstraint("shape", shapes=("####-##-##",), max_bytes=18, copied=((0, 2),))
    assert version_for(copied) == 6
    output = copied.to_dict()
    path = zip_of(tmp_path / "v6.paw", members(**{META: meta_with(version=6, output=output)}))
    assert read_bundle(path).meta.constraint == copied
    path = zip_of(tmp_path / "v5.paw", members(**{META: meta_with(version=5, output=output)}))
    with pytest.raises(BundleError, match="output needs bundle version 6"):
        read_bundle(path)
