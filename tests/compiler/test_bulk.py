"""Reading many examples at once: CSV, TSV, JSON lines and arrow lines."""

import pytest

from compiler.bulk import BulkError, format_for, read_examples, sniff

WANTED = [("Server down, nobody can log in", "urgent"), ("Where is my invoice?", "low")]


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("Server down, nobody can log in -> urgent\nWhere is my invoice? => low\n", "arrows"),
        ('"Server down, nobody can log in",urgent\nWhere is my invoice?,low\n', "csv"),
        ('input,output\n"Server down, nobody can log in",urgent\nWhere is my invoice?,low', "csv"),
        (
            "Input\tOutput\nServer down, nobody can log in\turgent\r\nWhere is my invoice?\tlow",
            "tsv",
        ),
        (
            '{"input": "Server down, nobody can log in", "output": "urgent"}\n\n'
            '{"input": "Where is my invoice?", "output": "low"}\n',
            "jsonl",
        ),
    ],
)
def test_each_format_is_sniffed_and_read(text, fmt):
    assert sniff(text) == fmt
    assert read_examples(text) == WANTED


def test_csv_keeps_quoted_newlines_and_commas():
    text = '"Line one\nline two, still the input","a, b"\n'
    assert read_examples(text, "csv") == [("Line one\nline two, still the input", "a, b")]


def test_numbers_in_json_lines_are_read_as_text():
    assert read_examples('{"input": "2 + 2", "output": 4}') == [("2 + 2", "4")]


def test_a_file_name_picks_the_format_over_sniffing():
    assert format_for("data.TSV", "a,b") == "tsv"
    assert format_for("data.jsonl", "a,b") == "jsonl"
    assert format_for("notes.txt", "a -> b") == "arrows"


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("a -> b\njust a line\n", "arrows", "Line 2: expected 'input -> output'."),
        ("a,b\nc,d,e\n", "csv", "Line 2: expected 2 columns (input, output), found 3"),
        ("a\tb\nc\n", "tsv", "Line 2: expected 2 columns"),
        ('{"input": "a", "output": "b"}\n{"input": "a"', "jsonl", "Line 2: not valid JSON"),
        (
            '{"input": "a", "output": "b"}\n{"in": "a", "out": "b"}',
            "jsonl",
            'Line 2: expected an object with "input"',
        ),
        ('{"input": ["a"], "output": "b"}', "jsonl", "Line 1: input and output must be text."),
        ("a,b\n ,d\n", "csv", "Line 2: give both an input and its output."),
        ("\n\n", "csv", "No examples found"),
    ],
)
def test_errors_name_the_line(text, fmt, message):
    with pytest.raises(BulkError) as excinfo:
        read_examples(text, fmt)
    assert message in str(excinfo.value)


def test_values_over_the_row_limits_are_errors():
    with pytest.raises(BulkError, match="Line 1: the input is longer than 5 characters"):
        read_examples("abcdef -> x", max_input=5)
    with pytest.raises(BulkError, match="Line 2: the output is longer than 3 characters"):
        read_examples("a -> b\nc -> dddd", max_output=3)
