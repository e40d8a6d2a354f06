"""JSONL helpers shared by the stages: gzip-aware, every error names the file and line, and the one reader that
tolerates the torn last line a SIGKILL can leave in a file being appended to."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from octo.errors import InputError


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """A whole JSON file; invalid JSON raises InputError naming ``path:line``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def read_jsonl(path: str | Path, *, torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line (see ``numbered_rows``)."""
    for _, row in numbered_rows(path, torn_tail=torn_tail):
        yield row


def numbered_rows(path: str | Path, *, torn_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, dict) per non-empty line; a bad line raises InputError naming ``path:line``.

    ``torn_tail=True`` is for files this project appends to while it runs (metrics, samples): a last line cut
    short by a kill (no newline at its end, not valid JSON) is skipped. Any other bad line is still an error,
    so only what a kill can leave behind is tolerated."""
    path = Path(path)
    with _open(path, "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if torn_tail and not line.endswith("\n"):  # only the last line can lack its newline
                    print(
                        f"{path}:{lineno}: skipping a last line cut short by an interruption", file=sys.stderr
                    )
                    return
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def drop_torn_tail(path: str | Path) -> bool:
    """Cut a last line without its newline (a write cut short by a kill) off an appended-to, uncompressed file,
    so that the next append starts on a line of its own. Returns whether anything was cut."""
    path = Path(path)
    try:
        fh = path.open("r+b")
    except FileNotFoundError:
        return False
    with fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return False
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return False
        pos = end
        while pos > 0:  # back to the newline that ends the last complete line
            start = max(0, pos - 65536)
            fh.seek(start)
            cut = fh.read(pos - start).rfind(b"\n")
            if cut >= 0:
                pos = start + cut + 1
                break
            pos = start
        fh.seek(pos)
        try:  # a complete row that only lost its newline is kept (read_jsonl keeps it too)
            json.loads(fh.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            fh.truncate(pos)
            return True
        fh.write(b"\n")
        return False


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file + rename); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with _open(tmp, "wt") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row and flush, so a killed run keeps every row written before it died."""
    append_jsonl_rows(path, [row])


def append_jsonl_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows in one write (after cutting a torn last line an earlier, killed run left)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row, ensure_ascii=False, default=float) + "\n" for row in rows))
