"""Collapsed-stack files (py-spy's and CPython's sampling profiler's) imported into a project with
`tripwire profile import`: their frames, threads and counts become a profile and its aggregates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tripwire_server.profiling import collapsed
from tripwire_server.store import open_store

_PROC = 'process 4242:"python app.py"'
_MAIN = f"{_PROC};thread (0x7F0A12345678);<module> (app.py:40);main (app.py:30)"
_WORKER = f"{_PROC};thread (0x7F0A87654321);_bootstrap (/usr/lib/python3.11/threading.py:995)"
PYSPY = (
    f"{_MAIN};crunch (app/compute.py:12) 70\n"
    f"{_MAIN};parse (app/io.py:8) 20\n"
    f"{_WORKER};wait (/usr/lib/python3.11/threading.py:320) 900\n"
)
CPYTHON = """\
tid:11;app.py:<module>:40;app.py:main:30;compute.py:crunch:12 3
tid:11;app.py:<module>:40;selectors.py:select:468 1
"""


def test_both_syntaxes_give_functions_files_lines_and_threads() -> None:
    """py-spy's "function (file:line)" with process and thread frames, and CPython's
    "tid:N;file:function:line" are read into the same frames."""
    spy = collapsed.parse(PYSPY.splitlines())
    thread, frames, count = spy[0]
    assert thread == str(0x7F0A12345678) and count == 70
    assert [(f.function, f.module, f.file, f.lineno) for f in frames] == [
        ("<module>", "app", "app.py", 40),
        ("main", "app", "app.py", 30),
        ("crunch", "compute", "app/compute.py", 12),
    ]
    cpy = collapsed.parse(CPYTHON.splitlines())
    assert cpy[0][0] == "11" and [f.function for f in cpy[0][1]] == ["<module>", "main", "crunch"]
    assert cpy[1][1][-1].module == "selectors"


@pytest.mark.parametrize("bad", ["no count here", "a;b;c -3", "a;b 12x"])
def test_a_line_without_a_count_is_refused_with_its_number(bad: str) -> None:
    """A malformed line stops the import with the line's number, importing nothing."""
    with pytest.raises(ValueError, match="line 2"):
        collapsed.parse(["a;b 1", bad])


def test_the_import_command_files_the_stacks_under_a_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tripwire profile import FILE --transaction batch` stores a profile whose hottest function
    tops `tripwire profile functions`; a thread waiting in threading's wait is idle, not ranked."""
    from tripwire_server.cli import main

    url = f"sqlite:///{tmp_path / 'tripwire.sqlite3'}"
    store = open_store(url)
    store.migrate()
    store.accounts.create_project("batch-jobs")
    store.close()
    path = tmp_path / "pyspy.txt"
    path.write_text(PYSPY)
    common = ["--database-url", url, "--json"]
    assert (
        main(["profile", "import", str(path), "--project", "batch-jobs", "--transaction", "nightly", *common])
        == 0
    )
    done = json.loads(capsys.readouterr().out)
    assert done["samples"] == 990 and done["stacks"] == 3 and done["transaction"] == "nightly"
    assert main(["profile", "functions", "--project", "batch-jobs", "--transaction", "nightly", *common]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert (rows[0]["function"], rows[0]["samples"]) == ("crunch", 70)
    assert rows[1]["function"] == "parse"
    assert not [r for r in rows if r["function"] == "wait" and r["samples"]]
    assert abs(rows[0]["self_share"] - 70 / 990) < 1e-6
    store = open_store(url)
    try:
        (info,) = store.profiles.list_profiles(store.accounts.get_project("batch-jobs").id)
        assert info.kind == "import" and info.samples == 990
    finally:
        store.close()
