"""Builders of adapters and bundles, good and malformed, shared by the unit tests
of the readers (tests/ml) and the reliability suite, which pushes the same
corpus through the real entry points (tests/reliability/test_malformed_files.py).

`malformed_adapters(folder)` and `malformed_bundles(folder)` write every broken
file and return (name, path, expected message) for each; the message is a
regular expression the refusal must match.
"""

import dataclasses
import json
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import gguf
import numpy as np

from pawhub.adapter import MAX_ADAPTER_BYTES, MAX_RANK, PROJECTIONS
from pawhub.bundle import (
    ADAPTER,
    MAX_BUNDLE_BYTES,
    META,
    PROMPT_TEMPLATE,
    PSEUDO_PROGRAM,
    RUNTIME_KEYS,
    RUNTIME_VERSION,
    BundleMeta,
    write_bundle,
)
from pawhub.prompt import prompt_template

# --- adapters ------------------------------------------------------------------------

# (inputs, outputs) of SmolLM2-135M's projections.
DIMS = {
    "attn_q": (576, 576),
    "attn_k": (576, 192),
    "attn_v": (576, 192),
    "attn_output": (576, 576),
    "ffn_gate": (576, 1536),
    "ffn_up": (576, 1536),
    "ffn_down": (1536, 576),
}
ADAPTER_FIELDS = {"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": 32.0}


def lora(layers=(28, 29), rank=32, seed=0, projections=PROJECTIONS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in layers:
        for proj in projections:
            n_in, n_out = DIMS[proj]
            tensors[f"blk.{i}.{proj}.weight.lora_a"] = rng.standard_normal((rank, n_in), np.float32)
            tensors[f"blk.{i}.{proj}.weight.lora_b"] = rng.standard_normal(
                (n_out, rank), np.float32
            )
    return tensors


def small_lora(**kwargs):
    return {k: v.astype(np.float16) for k, v in lora(layers=(29,), **kwargs).items()}


def raw_gguf(path, tensors, *, arch="llama", fields=ADAPTER_FIELDS):
    """Write any GGUF, valid or not, without the writer's own checks."""
    writer = gguf.GGUFWriter(path, arch=arch)
    for key, value in fields.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def _tensor_info_offset(data: bytes, name: str) -> int:
    """Where the tensor info of `name` continues after its name (at n_dims)."""
    encoded = name.encode()
    at = data.index(struct.pack("<Q", len(encoded)) + encoded)
    return at + 8 + len(encoded)


def with_tensor_info(data: bytes, name: str, *, dims=None, offset=None) -> bytes:
    """`data` (a GGUF) with the dims or the data offset of tensor `name` rewritten."""
    data = bytearray(data)
    at = _tensor_info_offset(bytes(data), name)
    (n_dims,) = struct.unpack_from("<I", data, at)
    if dims is not None:
        assert len(dims) == n_dims
        struct.pack_into(f"<{n_dims}Q", data, at + 4, *dims)
    if offset is not None:
        struct.pack_into("<Q", data, at + 4 + 8 * n_dims + 4, offset)
    return bytes(data)


def malformed_adapters(folder: Path) -> list[tuple[str, Path, str]]:
    """(description, path, expected message) for a corpus of broken adapters."""
    good = small_lora()
    ok_path = raw_gguf(folder / "ok.gguf", good)
    ok_bytes = ok_path.read_bytes()
    cases = []

    def file(name, data):
        path = folder / name
        path.write_bytes(data)
        return path

    def bad(name, message, tensors=good, **kwargs):
        cases.append((name, raw_gguf(folder / f"{name}.gguf", tensors, **kwargs), message))

    q_a = "blk.29.attn_q.weight.lora_a"
    cases += [
        ("empty", file("empty", b""), "bad magic or truncated"),
        ("not gguf", file("junk", b"PK\x03\x04" + bytes(100)), "bad magic"),
        ("header only", file("header", ok_bytes[:20]), "truncated header"),
        ("truncated half", file("half", ok_bytes[: len(ok_bytes) // 2]), "past the end|readable"),
        ("truncated tail", file("tail", ok_bytes[:-7]), "past the end|readable"),
        ("bad version", file("v9", ok_bytes[:4] + struct.pack("<I", 9) + ok_bytes[8:]), "version"),
        (
            "absurd tensor count",
            file("count", ok_bytes[:8] + struct.pack("<Q", 1 << 60) + ok_bytes[16:]),
            "claims",
        ),
        (
            "absurd field count",
            file("kv", ok_bytes[:16] + struct.pack("<Q", 1 << 40) + ok_bytes[24:]),
            "metadata fields",
        ),
        (
            "zero tensors",
            file("zero", ok_bytes[:8] + struct.pack("<Q", 0) + ok_bytes[16:]),
            "claims 0 tensors",
        ),
        (
            "absurd tensor dims",
            file("dims", with_tensor_info(ok_bytes, q_a, dims=(1 << 40, 1 << 40))),
            "readable|past the end|do not fit",
        ),
        (
            "tensor dims overflow",
            file("overflow", with_tensor_info(ok_bytes, q_a, dims=(1 << 63, 4))),
            "readable|past the end|do not fit",
        ),
        (
            "tensor data offset past the end",
            file("offset", with_tensor_info(ok_bytes, q_a, offset=1 << 40)),
            "readable|past the end",
        ),
        (
            "absurd name length",
            file(
                "name",
                ok_bytes.replace(
                    struct.pack("<Q", len(q_a)) + q_a.encode(),
                    struct.pack("<Q", 1 << 62) + q_a.encode(),
                ),
            ),
            "readable",
        ),
    ]
    bad("model not adapter", "general.type", fields={**ADAPTER_FIELDS, "general.type": "model"})
    bad("no general.type", "general.type", fields=without(ADAPTER_FIELDS, "general.type"))
    bad("wrong arch", "architecture", arch="gemma3")
    bad("control vector", "adapter.type", fields={**ADAPTER_FIELDS, "adapter.type": "cvec"})
    bad("no alpha", "alpha", fields=without(ADAPTER_FIELDS, "adapter.lora.alpha"))
    bad("alpha as int", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": 32})
    bad("negative alpha", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": -1.0})
    bad("nan alpha", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": float("nan")})
    bad("missing lora_b", "has no lora_b", without(good, "blk.29.attn_q.weight.lora_b"))
    bad("missing lora_a", "has no lora_a", without(good, "blk.29.ffn_up.weight.lora_a"))
    wrong_in = {**good, q_a: np.zeros((32, 577), np.float16)}
    bad("wrong input dim", "do not fit", wrong_in)
    wrong_out = {**good, "blk.29.attn_k.weight.lora_b": np.zeros((576, 32), np.float16)}
    bad("k sized like q", "do not fit", wrong_out)
    transposed = {**good, "blk.29.attn_v.weight.lora_a": np.zeros((576, 32), np.float16)}
    bad("transposed lora_a", "do not fit", transposed)
    pair_rank = {**good, "blk.29.attn_v.weight.lora_b": np.zeros((192, 16), np.float16)}
    bad("pair rank mismatch", "rank", pair_rank)
    mixed = {
        **good,
        "blk.29.attn_v.weight.lora_a": np.zeros((16, 576), np.float16),
        "blk.29.attn_v.weight.lora_b": np.zeros((192, 16), np.float16),
    }
    bad("ranks disagree", "disagree", mixed)
    big = lora(layers=(29,), rank=MAX_RANK + 1, projections=("attn_v",))
    bad("rank too big", "outside", {k: v.astype(np.float16) for k, v in big.items()})
    bad("layer 30", "base model lacks", {k.replace("blk.29", "blk.30"): v for k, v in good.items()})
    bad(
        "foreign tensor",
        "unexpected tensor",
        {**good, "token_embd.weight": np.zeros((8, 576), np.float16)},
    )
    bad("3-d tensor", "do not fit", {**good, q_a: np.zeros((1, 32, 576), np.float16)})
    ints = {**good, q_a: np.zeros((32, 576), np.int32)}
    bad("integer tensor", "unsupported type", ints)
    nan = dict(good)
    nan["blk.29.ffn_down.weight.lora_b"] = nan["blk.29.ffn_down.weight.lora_b"].copy()
    nan["blk.29.ffn_down.weight.lora_b"][3, 3] = np.nan
    bad("nan weight", "NaN", nan)
    return cases


def oversized_file(path: Path, limit: int, head: bytes = b"") -> Path:
    """A sparse file one byte over `limit` (costs no disk)."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(limit + 1)
    return path


def oversized_adapter(path: Path) -> Path:
    return oversized_file(path, MAX_ADAPTER_BYTES, b"GGUF")


# --- bundles -------------------------------------------------------------------------

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
    output={"kind": "choice", "choices": ["hi", "hello"]},
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


def zip_of(path: Path, contents: dict[str, bytes], extra: list[zipfile.ZipInfo | str] = ()) -> Path:
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
    if isinstance(raw["version"], int) and raw["version"] < RUNTIME_VERSION:
        for key in RUNTIME_KEYS:  # not in meta.json before version 4
            raw.pop(key)
    return json.dumps({k: v for k, v in raw.items() if v is not ...}).encode()


def symlink_entry(name):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# (description, members, extra entries, expected message)
BAD_MEMBERS = [
    ("path traversal", members(), ["../evil.txt"], "path traversal"),
    ("nested traversal", members(), ["notes/../../evil.txt"], "path traversal"),
    ("absolute path", members(), ["/etc/cron.d/evil"], "absolute path"),
    ("drive letter", members(), ["C:/evil"], "absolute path"),
    ("symlink entry", members(), [symlink_entry("link")], "symlink"),
    ("adapter is a symlink", members(**{ADAPTER: None}), [symlink_entry(ADAPTER)], "symlink"),
    ("duplicate names", members(), [ADAPTER], "duplicate members"),
    ("missing member", members(**{PSEUDO_PROGRAM: None}), [], "missing members"),
    ("extra member", members(), ["README.md"], "unexpected members"),
    ("too many entries", members(), [f"extra{i}" for i in range(20)], "entries"),
    (
        "no {INPUT_PLACEHOLDER}",
        members(**{PROMPT_TEMPLATE: b"no placeholder"}),
        [],
        "exactly one",
    ),
    (
        "two {INPUT_PLACEHOLDER}",
        members(**{PROMPT_TEMPLATE: (TEMPLATE + "{INPUT_PLACEHOLDER}").encode()}),
        [],
        "exactly one",
    ),
    ("template not UTF-8", members(**{PROMPT_TEMPLATE: b"\xff\xfe"}), [], "UTF-8"),
    ("meta not JSON", members(**{META: b"{not json"}), [], "not valid JSON"),
    ("meta not an object", members(**{META: b"[1, 2]"}), [], "JSON object"),
    ("meta missing a key", members(**{META: meta_with(lora_rank=...)}), [], "missing keys"),
    ("meta unknown key", members(**{META: meta_with(owner="me")}), [], "unknown keys"),
    ("rank as string", members(**{META: meta_with(lora_rank="32")}), [], "lora_rank must be a int"),
    ("rank as bool", members(**{META: meta_with(lora_rank=True)}), [], "lora_rank must be a int"),
    ("rank zero", members(**{META: meta_with(lora_rank=0)}), [], "positive"),
    ("version 9", members(**{META: meta_with(version=9)}), [], "unsupported bundle version"),
    (
        "version 1 with an output",
        members(**{META: meta_with(version=1, output={"kind": "span"})}),
        [],
        "output needs bundle version 2",
    ),
    ("output missing", members(**{META: meta_with(output=...)}), [], "missing keys output"),
    ("output not an object", members(**{META: meta_with(output=[1])}), [], "output must be a dict"),
    (
        "unknown output kind",
        members(**{META: meta_with(output={"kind": "regex"})}),
        [],
        "output kind must be one of",
    ),
    (
        "output choices without the choice kind",
        members(**{META: meta_with(output={"kind": "free", "choices": ["a"]})}),
        [],
        "choices go with the choice kind",
    ),
    (
        "too many output choices",
        members(
            **{
                META: meta_with(
                    output={
                        "kind": "choice",
                        "choices": list("abcdefghijklmnopqrstuvwxyz0123456789"),
                    }
                )
            }
        ),
        [],
        "at most 32 choices",
    ),
    (
        "an output choice too long",
        members(**{META: meta_with(output={"kind": "choice", "choices": ["a", "b" * 201]})}),
        [],
        "1 to 200",
    ),
    (
        "an output choice not a string",
        members(**{META: meta_with(output={"kind": "choice", "choices": ["a", 2]})}),
        [],
        "1 to 200",
    ),
    (
        "duplicate output choices",
        members(**{META: meta_with(output={"kind": "choice", "choices": ["a", "a"]})}),
        [],
        "distinct",
    ),
    (
        "a shape in a version 2 bundle",
        members(**{META: meta_with(version=2, output={"kind": "shape", "shapes": ["##"]})}),
        [],
        "needs bundle version 3",
    ),
    (
        "a span start in a version 2 bundle",
        members(**{META: meta_with(version=2, output={"kind": "span", "start": "space"})}),
        [],
        "needs bundle version 3",
    ),
    (
        "an output shape with letters",
        members(**{META: meta_with(output={"kind": "shape", "shapes": ["###-abc"]})}),
        [],
        "ASCII punctuation",
    ),
    (
        "unknown output key",
        members(**{META: meta_with(output={"kind": "span", "regex": ".*"})}),
        [],
        "unknown keys regex",
    ),
    ("short sha256", members(**{META: meta_with(base_model_sha256="abc")}), [], "64 lowercase hex"),
    (
        "unknown quantization",
        members(**{META: meta_with(adapter_quantization="Q2_K")}),
        [],
        "adapter_quantization",
    ),
]


def zip_bomb(path: Path) -> Path:
    """200 MB of zeros as the adapter: ~200 KB on disk, huge once expanded."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members(**{ADAPTER: None}).items():
            archive.writestr(name, data)
        with archive.open(ADAPTER, "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(200):
                member.write(chunk)
    return path


def lying_size_header(path: Path) -> Path:
    """The central directory claims a tiny adapter; the data inflates far past the cap."""
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
    return path


NOT_ZIPS = [b"", b"not a zip at all", b"PK\x03\x04" + bytes(40)]


def valid_bundle(path: Path, adapter: Path, **meta_changes) -> Path:
    """A bundle `read_bundle` accepts, around `adapter`."""
    write_bundle(
        path,
        meta=dataclasses.replace(META_VALUES, **meta_changes),
        adapter_path=adapter,
        prompt_template=TEMPLATE,
        pseudo_program=PSEUDO,
    )
    return path


def malformed_bundles(folder: Path) -> list[tuple[str, Path, str]]:
    """(description, path, expected message) for a corpus of broken bundles:
    every case of BAD_MEMBERS, a zip bomb, a lying size header, files that are
    no ZIP, one over the size cap, and a symlink to a good bundle."""
    cases = [
        (name, zip_of(folder / f"bad-{i}.paw", contents, extra), message)
        for i, (name, contents, extra, message) in enumerate(BAD_MEMBERS)
    ]
    cases.append(("zip bomb", zip_bomb(folder / "bomb.paw"), "expands to"))
    cases.append(("lying size header", lying_size_header(folder / "liar.paw"), "CRC"))
    for i, data in enumerate(NOT_ZIPS):
        path = folder / f"junk-{i}.paw"
        path.write_bytes(data)
        cases.append((f"not a zip ({len(data)} bytes)", path, "not a valid ZIP"))
    huge = oversized_file(folder / "huge.paw", MAX_BUNDLE_BYTES)
    cases.append(("over the size cap", huge, "over the"))
    adapter = folder / "some-adapter.gguf"
    adapter.write_bytes(b"GGUF")
    link = folder / "link.paw"
    link.symlink_to(valid_bundle(folder / "real.paw", adapter))
    cases.append(("symlinked bundle", link, "regular file"))
    return cases
