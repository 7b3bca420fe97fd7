"""Many examples at once: a paste or an upload read into (input, output) rows.

The compile form shows the rows and merges them into the one spec with
`spec.merge_spec`, so the API (one spec string) is unchanged. Four formats:

- JSON lines: one ``{"input": "...", "output": "..."}`` object a line;
- TSV: input, a tab, output;
- CSV: two columns (quoted as usual when a value has commas or newlines);
- arrow lines: ``input -> output`` (or ``=>``, ``→``), as in free-text specs.

An optional ``input,output`` header row is skipped in CSV and TSV. Errors name
the line, so the author can fix the paste.
"""

import csv
import io
import json

from .spec import split_arrow

FORMATS = {
    "jsonl": "JSON lines",
    "tsv": "TSV (input, tab, output)",
    "csv": "CSV (input, output)",
    "arrows": "input -> output lines",
}
# By file name ending; anything else is sniffed from its text.
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".csv": "csv"}
HEADER = ("input", "output")
MAX_UPLOAD_BYTES = 256 * 1024


class BulkError(ValueError):
    """Examples that cannot be read; the message names the line and is for the author."""


def sniff(text: str) -> str:
    """The format of a paste: from its first non-blank line."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if split_arrow(first):
        return "arrows"
    return "csv"


def format_for(filename: str, text: str) -> str:
    lower = filename.lower()
    for ending, fmt in EXTENSIONS.items():
        if lower.endswith(ending):
            return fmt
    return sniff(text)


def read_examples(
    text: str, fmt: str | None = None, *, max_input: int = 2000, max_output: int = 1000
):
    """[(input, output), ...] from `text` in `fmt` (sniffed when None); BulkError otherwise."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt = fmt or sniff(text)
    rows = _READERS[fmt](text)
    if not rows:
        raise BulkError(f"No examples found in the {FORMATS[fmt]}.")
    examples = []
    for line, x, y in rows:
        x, y = x.strip(), y.strip()
        if not x or not y:
            raise BulkError(f"Line {line}: give both an input and its output.")
        if len(x) > max_input:
            raise BulkError(f"Line {line}: the input is longer than {max_input} characters.")
        if len(y) > max_output:
            raise BulkError(f"Line {line}: the output is longer than {max_output} characters.")
        examples.append((x, y))
    return examples


def _jsonl(text):
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BulkError(f"Line {number}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(item, dict) or not {"input", "output"} <= item.keys():
            raise BulkError(f'Line {number}: expected an object with "input" and "output".')
        x, y = item["input"], item["output"]
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in (x, y)):
            raise BulkError(f"Line {number}: input and output must be text.")
        rows.append((number, str(x), str(y)))
    return rows


def _table(text, delimiter):
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = []
    try:
        for record in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if not rows and tuple(c.strip().lower() for c in record) == HEADER:
                continue
            if len(record) != 2:
                name = "tab" if delimiter == "\t" else "comma"
                raise BulkError(
                    f"Line {number}: expected 2 columns (input, output), found {len(record)}; "
                    f"quote a value that has a {name} in it."
                )
            rows.append((number, record[0], record[1]))
    except csv.Error as exc:
        raise BulkError(f"Line {reader.line_num}: {exc}.") from exc
    return rows


def _arrows(text):
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        pair = split_arrow(line)
        if pair is None:
            raise BulkError(f"Line {number}: expected 'input -> output'.")
        rows.append((number, *pair))
    return rows


_READERS = {
    "jsonl": _jsonl,
    "tsv": lambda text: _table(text, "\t"),
    "csv": lambda text: _table(text, ","),
    "arrows": _arrows,
}
