"""Hostile or broken config files: each is one line-numbered problem and exit 78, never a
traceback, a blown stack or a hang (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from os import EX_CONFIG
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import yaml_source

from conftest import MINIMAL

ALIAS_BOMB = "\n".join(
    ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"lol{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 10)]
) + "\n"


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    # The deadline is the test: an alias bomb expanded would take hours and all the memory.
    return subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(path)], capture_output=True, text=True, timeout=60)


def first_problem(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()[0]


@pytest.mark.parametrize(
    "content, expected",
    [
        # text, not data: the bytes of a file, and their FILE:LINE:COL
        (MINIMAL.lstrip().replace("test-house", "test\x00house").encode(), ":2:11: (yaml): control character U+0000 is not allowed"),
        (MINIMAL.lstrip().replace("test-house", "test\x1bhouse").encode(), ":2:11: (yaml): control character U+001B is not allowed"),
        (("building: " + "[" * 5000 + "]" * 5000 + "\n").encode(), ":1:60: (yaml): nested more than 50 levels deep"),
        (ALIAS_BOMB.encode(), ":5:7: (yaml): expands to more than 100000 values"),
        (b"building:\n  id: caf\xe9\n", ":2:10: (file): is not UTF-8 text: byte 0xe9"),
        (b"building:\n  since: 2026-13-45\n", ":2:10: (yaml): cannot read this value: month must be in 1..12"),
        (b"building:\n  id: " + b"9" * 5000 + b"\n", ":2:7: (yaml): cannot read this value: Exceeds the limit"),
        (b"building: &a [*a]\n", ":1:11: (yaml): nested more than 50 levels deep, counting what aliases repeat"),
        (b"? !!set {a}\n: 1\n", ":1:3: (yaml): a mapping key must be a plain value"),
        (b"a: &x [1]\nb: {<<: *x}\n", ":1:8: (yaml): '<<' merges a mapping or a list of mappings"),
    ],
    ids=["nul", "escape", "5000-brackets", "alias-bomb", "latin-1", "bad-date", "huge-int", "recursive-alias", "set-key", "merge-list"],
)
def test_hostile_yaml_is_one_positioned_problem_and_exit_78(building_dir, content, expected):
    path = building_dir / "building.yaml"
    path.write_bytes(content)
    problem = first_problem(check_config(path))
    assert problem.startswith(f"{path}{expected}"), problem


def test_a_directory_is_refused(building_dir):
    (building_dir / "building.yaml").mkdir()
    problem = first_problem(check_config(building_dir / "building.yaml"))
    assert problem == f"{building_dir / 'building.yaml'}:1:1: (file): is a directory, not a YAML file"


def test_a_fifo_is_refused_without_waiting_for_a_writer(building_dir):
    fifo = building_dir / "building.yaml"
    os.mkfifo(fifo)
    assert first_problem(check_config(fifo)).endswith(":1:1: (file): is not a regular file")


def test_an_oversized_file_is_refused_before_parsing(building_dir):
    path = building_dir / "building.yaml"
    path.write_bytes(b"# " + b"x" * yaml_source.MAX_BYTES + b"\n")
    assert first_problem(check_config(path)).endswith(f":1:1: (file): is {yaml_source.MAX_BYTES + 3} bytes; at most {yaml_source.MAX_BYTES} are read")


def test_a_missing_file_is_one_problem(building_dir):
    assert first_problem(check_config(building_dir / "nowhere.yaml")).endswith(":1:1: (file): cannot open: No such file or directory")


def test_merge_keys_let_the_mapping_override_what_it_merges():
    document = yaml_source.load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert document.data["c"] == {"x": 1, "y": 3}
    assert document.position(("c", "y")) == (4, 3) and document.position(("c", "x")) == (1, 11)


def test_a_repeated_alias_within_the_limits_still_loads():
    shared = "safety: &s {a: 1, b: [1, 2, 3]}\n" + "".join(f"c{n}: *s\n" for n in range(200))
    assert yaml_source.load(shared).data["c199"] == {"a": 1, "b": [1, 2, 3]}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}&*!<>:-,?|'\" \n\tab01\x00\x85\ufeff#%@`")), max_size=200))
def test_any_text_is_a_document_or_a_positioned_error(text):
    try:
        yaml_source.load(text)
    except yaml_source.SourceError as error:
        assert error.line >= 1 and error.column >= 1
