import dataclasses
import json
import stat
import warnings
import zipfile

import pytest

from compiler.bundle import (
    ADAPTER,
    MAX_BUNDLE_BYTES,
    META,
    PROMPT_TEMPLATE,
    PSEUDO_PROGRAM,
    BundleError,
    BundleMeta,
    read_bundle,
    write_bundle,
)
from runtime.prompt import prompt_template

PSEUDO = "Task: say hi"
TEMPLATE = prompt_template(PSEUDO)
META_VALUES = BundleMeta(
    program_id="ab" * 16,
    spec="Say hi.",
    compiler_snapshot="paw-smollm2-135m-20261124",
    compiler_fingerprint="cd" * 32,
    base_model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    base_model_sha256="ef" * 32,
    lora_rank=32,
    lora_alpha=32.0,
    adapter_quantization="Q4_0",
    created_at="2026-11-24T12:00:00+00:00",
)


def members(**overrides) -> dict[str, bytes]:
    contents = {
        META: json.dumps(dataclasses.asdict(META_VALUES)).encode(),
        ADAPTER: b"GGUF" + bytes(100),
        PROMPT_TEMPLATE: TEMPLATE.encode(),
        PSEUDO_PROGRAM: PSEUDO.encode(),
    }
    contents.update(overrides)
    return {name: data for name, data in contents.items() if data is not None}


def zip_of(tmp_path, contents: dict[str, bytes], extra: list[zipfile.ZipInfo | str] = ()) -> str:
    path = tmp_path / "program.paw"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when asked to write a duplicate
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in contents.items():
                archive.writestr(name, data)
            for item in extra:
                archive.writestr(item, b"x")
    return path


def meta_with(**changes) -> bytes:
    raw = dataclasses.asdict(META_VALUES)
    raw.update(changes)
    return json.dumps({k: v for k, v in raw.items() if v is not ...}).encode()


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


def symlink_entry(name):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("contents", "extra", "message"),
    [
        (members(), ["../evil.txt"], "path traversal"),
        (members(), ["notes/../../evil.txt"], "path traversal"),
        (members(), ["/etc/cron.d/evil"], "absolute path"),
        (members(), ["C:/evil"], "absolute path"),
        (members(), [symlink_entry("link")], "symlink"),
        (members(**{ADAPTER: None}), [symlink_entry(ADAPTER)], "symlink"),
        (members(), [ADAPTER], "duplicate members"),
        (members(**{PSEUDO_PROGRAM: None}), [], "missing members"),
        (members(), ["README.md"], "unexpected members"),
        (members(), [f"extra{i}" for i in range(20)], "entries"),
        (members(**{PROMPT_TEMPLATE: b"no placeholder"}), [], "exactly one"),
        (
            members(**{PROMPT_TEMPLATE: (TEMPLATE + "{INPUT_PLACEHOLDER}").encode()}),
            [],
            "exactly one",
        ),
        (members(**{PROMPT_TEMPLATE: b"\xff\xfe"}), [], "UTF-8"),
        (members(**{META: b"{not json"}), [], "not valid JSON"),
        (members(**{META: b"[1, 2]"}), [], "JSON object"),
        (members(**{META: meta_with(lora_rank=...)}), [], "missing keys"),
        (members(**{META: meta_with(owner="me")}), [], "unknown keys"),
        (members(**{META: meta_with(lora_rank="32")}), [], "lora_rank must be a int"),
        (members(**{META: meta_with(lora_rank=True)}), [], "lora_rank must be a int"),
        (members(**{META: meta_with(lora_rank=0)}), [], "positive"),
        (members(**{META: meta_with(version=2)}), [], "unsupported bundle version"),
        (members(**{META: meta_with(base_model_sha256="abc")}), [], "64 lowercase hex"),
        (members(**{META: meta_with(adapter_quantization="Q2_K")}), [], "adapter_quantization"),
    ],
)
def test_reader_refuses(tmp_path, contents, extra, message):
    path = zip_of(tmp_path, contents, extra)
    with pytest.raises(BundleError, match=message):
        read_bundle(path)


def test_reader_refuses_a_zip_bomb_before_inflating_it(tmp_path):
    # 200 MB of zeros deflate to ~200 KB: small on disk, huge once expanded.
    path = tmp_path / "bomb.paw"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members(**{ADAPTER: None}).items():
            archive.writestr(name, data)
        with archive.open(ADAPTER, "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(200):
                member.write(chunk)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(BundleError, match="expands to"):
        read_bundle(path)


def test_reader_refuses_a_lying_size_header(tmp_path):
    # The central directory claims a tiny adapter; the data inflates far past the cap.
    path = tmp_path / "liar.paw"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members(**{ADAPTER: bytes(70 << 20)}).items():
            archive.writestr(name, data)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(ADAPTER)
    real_size = info.file_size.to_bytes(4, "little")
    # Rewrite every occurrence of the real size (local header + central directory).
    for offset in [i for i in range(len(raw) - 3) if raw[i : i + 4] == real_size]:
        raw[offset : offset + 4] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="CRC"):
        read_bundle(path)


def test_reader_refuses_oversized_files_without_opening_them(tmp_path):
    path = tmp_path / "huge.paw"
    with path.open("wb") as f:
        f.truncate(MAX_BUNDLE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(BundleError, match="over the"):
        read_bundle(path)


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04" + bytes(40)])
def test_reader_refuses_non_zips(tmp_path, data):
    path = tmp_path / "junk.paw"
    path.write_bytes(data)
    with pytest.raises(BundleError, match="not a valid ZIP"):
        read_bundle(path)


def test_reader_refuses_a_symlinked_bundle(tmp_path):
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    real = tmp_path / "real.paw"
    write_bundle(
        real,
        meta=META_VALUES,
        adapter_path=adapter,
        prompt_template=TEMPLATE,
        pseudo_program=PSEUDO,
    )
    link = tmp_path / "link.paw"
    link.symlink_to(real)
    with pytest.raises(BundleError, match="regular file"):
        read_bundle(link)


def test_member_caps_are_inclusive(tmp_path):
    path = zip_of(tmp_path, members(**{PSEUDO_PROGRAM: b"p" * (64 * 1024)}))
    assert len(read_bundle(path).pseudo_program) == 64 * 1024
