"""The ``.paw`` bundle: one ZIP that holds everything needed to run a program.

Members (exactly these, nothing else):
  meta.json            provenance and adapter facts (``BundleMeta``)
  adapter.gguf         the LoRA adapter
  prompt_template.txt  the full prompt with exactly one {INPUT_PLACEHOLDER}
  pseudo_program.txt   the pseudo-program, for people to read

Bundles are downloaded and uploaded by strangers, so ``read_bundle`` treats the
file as hostile: it checks sizes before it decompresses anything, reads each
member with a hard cap, and refuses anything it would not have written itself.
It never extracts to disk, so paths in the archive cannot point anywhere.
"""

import dataclasses
import json
import re
import stat
import zipfile
from pathlib import Path

from pawhub import manifest
from pawhub.constraint import SHAPE, ConstraintError, OutputConstraint
from pawhub.prompt import PromptError, split

BUNDLE_FORMAT_VERSION = 4  # a new bundle's version unless its output needs more (version_for)
# Version 1 bundles come from before output constraints: no `output`, free decoding.
# Version 3 adds the shape kind and spans' `start` (rules 2 of pawhub.constraint).
# Version 4 adds what the official PAW SDK needs to run a program locally:
# `interpreter`, `runtime_id` and `runtime_manifest_version` (pawhub.manifest).
# Version 5 adds rules 3's `fixed`, `max_bytes` and the words kind.
# Version 6 adds rules 4's `copied` (shapes' digit groups copied from the input).
# New bundles are written in version 4 at least, 5 or 6 when their output needs it;
# older ones stay readable (the hub upgrades a stored one when it is downloaded:
# programs.services).
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
RUNTIME_VERSION = 4
RUNTIME_KEYS = ("interpreter", "runtime_id", "runtime_manifest_version")
ADAPTER_QUANTIZATIONS = ("Q4_0", "Q8_0", "F16")

META = "meta.json"
ADAPTER = "adapter.gguf"
PROMPT_TEMPLATE = "prompt_template.txt"
PSEUDO_PROGRAM = "pseudo_program.txt"
MEMBERS = (META, ADAPTER, PROMPT_TEMPLATE, PSEUDO_PROGRAM)

# An r=32 Q4_0 adapter over all seven projections is ~5.5 MB and F16 ~20 MB;
# the caps leave room for bigger ranks and no room for abuse.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_MEMBER_BYTES = {
    META: 64 * 1024,
    ADAPTER: 64 * 1024 * 1024,
    PROMPT_TEMPLATE: 64 * 1024,
    PSEUDO_PROGRAM: 64 * 1024,
}
MAX_EXPANDED_BYTES = sum(MAX_MEMBER_BYTES.values())
# Central directory entries are read before any check can run; a bundle has
# four, so anything past a handful is refused without looking further.
MAX_ZIP_ENTRIES = 16
_ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle that is malformed, oversized or unsafe; the message says which rule it broke."""


def constraint_version(constraint: OutputConstraint) -> int:
    """The oldest bundle version that can hold ``constraint``."""
    if constraint.needs_rules_4:
        return 6
    if constraint.needs_rules_3:
        return 5
    if constraint.kind == SHAPE or constraint.start != "word":
        return 3
    return 2


def version_for(constraint: OutputConstraint) -> int:
    """The version a new bundle holding ``constraint`` is written in: the
    oldest that holds both its output and the runtime keys."""
    return max(RUNTIME_VERSION, constraint_version(constraint))


@dataclasses.dataclass(frozen=True)
class BundleMeta:
    program_id: str
    spec: str
    compiler_snapshot: str
    compiler_fingerprint: str
    base_model_id: str
    base_model_sha256: str
    lora_rank: int
    lora_alpha: float
    adapter_quantization: str
    created_at: str  # ISO 8601
    # What the answers may be: pawhub.constraint.OutputConstraint.to_dict() ({} in version 1).
    output: dict = dataclasses.field(default_factory=dict)
    version: int = BUNDLE_FORMAT_VERSION
    # Version 4 on: the runtime that runs it (pawhub.manifest). Blank in older
    # versions, whose meta.json does not hold them.
    interpreter: str = manifest.INTERPRETER
    runtime_id: str = manifest.RUNTIME_ID
    runtime_manifest_version: int = manifest.MANIFEST_VERSION

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            # bool is an int subclass; a JSON true must not pass as a rank.
            ok = isinstance(value, field.type) and not isinstance(value, bool)
            if field.type is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok:
                raise BundleError(f"meta.json: {field.name} must be a {field.type.__name__}")
        if self.version not in READABLE_VERSIONS:
            raise BundleError(f"meta.json: unsupported bundle version {self.version}")
        if self.version == 1 and self.output:
            raise BundleError("meta.json: output needs bundle version 2")
        try:
            constraint = OutputConstraint.from_dict(self.output)
        except ConstraintError as exc:
            raise BundleError(f"meta.json: output: {exc}") from exc
        if 1 < self.version < constraint_version(constraint):
            needed = constraint_version(constraint)
            raise BundleError(f"meta.json: output needs bundle version {needed}")
        if self.version < RUNTIME_VERSION:
            for key, blank in zip(RUNTIME_KEYS, ("", "", 0), strict=True):
                object.__setattr__(self, key, blank)
        elif not all(getattr(self, key) for key in RUNTIME_KEYS):
            raise BundleError(f"meta.json: version {self.version} needs {', '.join(RUNTIME_KEYS)}")
        if not _SHA256.fullmatch(self.base_model_sha256):
            raise BundleError("meta.json: base_model_sha256 must be 64 lowercase hex digits")
        if self.lora_rank < 1:
            raise BundleError("meta.json: lora_rank must be positive")
        if self.adapter_quantization not in ADAPTER_QUANTIZATIONS:
            raise BundleError(
                f"meta.json: adapter_quantization must be one of {', '.join(ADAPTER_QUANTIZATIONS)}"
            )

    @property
    def constraint(self) -> OutputConstraint:
        return OutputConstraint.from_dict(self.output)


@dataclasses.dataclass(frozen=True)
class Bundle:
    meta: BundleMeta
    adapter: bytes
    prompt_template: str
    pseudo_program: str


def write_bundle(
    path: Path | str,
    *,
    meta: BundleMeta,
    adapter_path: Path | str,
    prompt_template: str,
    pseudo_program: str,
) -> None:
    """Write a bundle that ``read_bundle`` accepts, or raise ``BundleError`` without writing."""
    _check_template(prompt_template)
    contents = {
        META: meta_json(meta).encode(),
        ADAPTER: Path(adapter_path).read_bytes(),
        PROMPT_TEMPLATE: prompt_template.encode(),
        PSEUDO_PROGRAM: pseudo_program.encode(),
    }
    for name, data in contents.items():
        if len(data) > MAX_MEMBER_BYTES[name]:
            raise BundleError(
                f"{name} is {len(data)} bytes, over the {MAX_MEMBER_BYTES[name]} limit"
            )
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name in MEMBERS:
                # A fixed timestamp keeps the archive bytes a function of its contents.
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                # GGUF quantized data barely compresses; storing it saves CPU on both ends.
                info.compress_type = zipfile.ZIP_STORED if name == ADAPTER else zipfile.ZIP_DEFLATED
                archive.writestr(info, contents[name])
        if partial.stat().st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle would exceed {MAX_BUNDLE_BYTES} bytes")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def meta_json(meta: BundleMeta) -> str:
    """meta.json's text: a version below 4 without the runtime keys, as it was written."""
    fields = dataclasses.asdict(meta)
    if meta.version < RUNTIME_VERSION:
        for key in RUNTIME_KEYS:
            del fields[key]
    return json.dumps(fields, indent=2, sort_keys=True)


def upgrade_meta(meta: BundleMeta, *, interpreter: str, runtime_id: str, manifest_version: int):
    """``meta`` in the current version with the runtime keys: what an older bundle
    becomes when the hub upgrades it. Its output is unchanged (a version-4 reader
    reads every output version 1-3 holds; version 1's empty output is free decoding)."""
    return dataclasses.replace(
        meta,
        version=max(RUNTIME_VERSION, meta.version),
        interpreter=interpreter,
        runtime_id=runtime_id,
        runtime_manifest_version=manifest_version,
    )


def read_bundle(path: Path | str) -> Bundle:
    """Read and validate a bundle; raise ``BundleError`` for anything outside the format."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise BundleError("the bundle is not a regular file")
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle is {size} bytes, over the {MAX_BUNDLE_BYTES} limit")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_entries(infos)
            contents = {info.filename: _read_member(archive, info) for info in infos}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"not a valid ZIP file: {exc}") from exc

    try:
        texts = {
            name: contents[name].decode("utf-8") for name in (META, PROMPT_TEMPLATE, PSEUDO_PROGRAM)
        }
    except UnicodeDecodeError as exc:
        raise BundleError("text members must be UTF-8") from exc
    _check_template(texts[PROMPT_TEMPLATE])
    return Bundle(
        meta=_parse_meta(texts[META]),
        adapter=contents[ADAPTER],
        prompt_template=texts[PROMPT_TEMPLATE],
        pseudo_program=texts[PSEUDO_PROGRAM],
    )


def _check_entries(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise BundleError(f"the bundle has {len(infos)} entries; a bundle has {len(MEMBERS)}")
    names = [info.filename for info in infos]
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            raise BundleError(f"absolute path in bundle: {name!r}")
        if ".." in re.split(r"[/\\]", name):
            raise BundleError(f"path traversal in bundle: {name!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleError(f"symlink in bundle: {name!r}")
        if info.flag_bits & 0x1:
            raise BundleError(f"encrypted member in bundle: {name!r}")
        if info.compress_type not in _ALLOWED_COMPRESSION:
            raise BundleError(f"unsupported compression for {name!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BundleError(f"duplicate members in bundle: {', '.join(duplicates)}")
    missing = [name for name in MEMBERS if name not in names]
    if missing:
        raise BundleError(f"missing members in bundle: {', '.join(missing)}")
    extra = [name for name in names if name not in MEMBERS]
    if extra:
        raise BundleError(f"unexpected members in bundle: {', '.join(extra)}")
    expanded = 0
    for info in infos:
        limit = MAX_MEMBER_BYTES[info.filename]
        if info.file_size > limit:
            raise BundleError(f"{info.filename} expands to {info.file_size} bytes, over {limit}")
        expanded += info.file_size
    if expanded > MAX_EXPANDED_BYTES:
        raise BundleError(f"the bundle expands to {expanded} bytes, over {MAX_EXPANDED_BYTES}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # The declared size was checked, but it is the archive's own claim: cap the
    # actual read too. (zipfile stops at the declared size and then checks the
    # CRC, so a header that understates the size fails as BadZipFile.)
    limit = MAX_MEMBER_BYTES[info.filename]
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{info.filename} expands past {limit} bytes")
    return data


def _check_template(template: str) -> None:
    try:
        split(template)
    except PromptError as exc:
        raise BundleError(f"{PROMPT_TEMPLATE}: {exc}") from exc


def _parse_meta(text: str) -> BundleMeta:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"meta.json is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError("meta.json must hold a JSON object")
    known = {field.name for field in dataclasses.fields(BundleMeta)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BundleError(f"meta.json: unknown keys {', '.join(unknown)}")
    optional = {"output"} if raw.get("version") == 1 else set()
    if isinstance(raw.get("version"), int) and raw["version"] < RUNTIME_VERSION:
        if set(RUNTIME_KEYS) & set(raw):
            raise BundleError(f"meta.json: {', '.join(RUNTIME_KEYS)} need bundle version 4")
        optional |= set(RUNTIME_KEYS)
    missing = sorted(known - optional - set(raw))
    if missing:
        raise BundleError(f"meta.json: missing keys {', '.join(missing)}")
    return BundleMeta(**raw)
