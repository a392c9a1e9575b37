"""The files of a benchmark run: a lock while a run writes, records checked line by line, merged summaries.

Records never get lost or duplicated: a second writer is refused while the first runs (`RunLock`); a records
file is validated when a run resumes (`read_records`), bad lines are moved to a side file that says why,
and every repair is announced. Summaries of several runs into one folder are merged (`merge_summary`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

LOCK_NAME = ".clipcam-run.lock"
_HELD: dict[
    Path, int
] = {}  # locks this process holds, with their nesting depth (a command, then its API calls)


class FolderLockedError(RuntimeError):
    """Another run is writing to this run folder or records file."""


class RecordsRepairedWarning(UserWarning):
    """A records file was changed on resume (bad lines quarantined, failed queries dropped for a retry)."""


# ---------------------------------------------------------------------------------------------- lock
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _command() -> str:
    """This process's command line, as the user typed it where it can be told (`python -m clipcam_utils ...`)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("clipcam_utils", "__main__.py")):
        argv[0] = "python -m clipcam_utils"
    return " ".join(argv)


class RunLock:
    """Exclusive right to write a run folder (or one records file), held as `<target>/.clipcam-run.lock`.

    The lock file names the writer's PID, host, start time and command. A lock whose PID no longer runs on
    this host is stale (a killed run) and is taken over with a warning; a live one is refused with its PID.
    """

    def __init__(self, target: str | Path) -> None:
        target = Path(target)
        self.path = target / LOCK_NAME if target.is_dir() else target.with_name(target.name + ".lock")
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": _command()}  # fmt: skip

    def _holder(self) -> dict | None:
        """The lock's owner record; None when there is none or it is unreadable (no positive integer pid)."""
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid = holder.get("pid") if isinstance(holder, dict) else None
        return holder if isinstance(pid, int) and pid > 0 else None

    def acquire(self) -> RunLock:
        """Take the lock or raise RuntimeError naming the run that holds it."""
        self.path = self.path.resolve()
        if _HELD.get(self.path):
            _HELD[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.owner)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None and time.time() - self._mtime() < 5:
                    time.sleep(0.2)  # another writer is between creating and filling its lock
                    continue
                self._refuse_or_take_over(holder)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(text)
            _HELD[self.path] = 1
            return self
        raise FolderLockedError(
            f"could not take the lock {self.path}; another run keeps taking it, try again"
        )

    def writer(self) -> str | None:
        """Who is writing the target now (a live holder, or one on another host that cannot be checked);
        None when nobody is. For readers, which take no lock."""
        holder = self._holder()
        if holder is None:
            return None
        pid, host = holder["pid"], holder.get("host", "")
        if host == self.owner["host"] and not _alive(pid):
            return None  # a stale lock of a killed run
        return f"PID {pid} on {host}, started {holder.get('started', '?')}: {holder.get('command', '?')}"

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _refuse_or_take_over(self, holder: dict | None) -> None:
        where = self.path.parent
        if holder is not None:
            pid, host = int(holder.get("pid", -1)), holder.get("host", "")
            who = f"PID {pid} on {host}, started {holder.get('started', '?')}: {holder.get('command', '?')}"
            if host != self.owner["host"]:
                raise FolderLockedError(f"{where} is being written by another run ({who}); it runs on another host, so "
                                   f"this one cannot check it. Wait for it, choose another --out, or remove "
                                   f"{self.path} if that run is gone")  # fmt: skip
            if _alive(pid):
                raise FolderLockedError(f"{where} is being written by another run ({who}); two writers would "
                                   f"duplicate records. Wait for it to finish or choose another --out")  # fmt: skip
            note = f"took over the stale lock {self.path} of PID {pid} (no longer running; started {holder.get('started', '?')})"
        else:
            note = f"took over the unreadable lock {self.path} (left by a run that stopped while taking it)"
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        warnings.warn(note, RuntimeWarning, stacklevel=4)

    def release(self) -> None:
        """Remove the lock if it is still ours (and this is the outermost holder in this process)."""
        depth = _HELD.get(self.path, 0)
        if depth > 1:
            _HELD[self.path] = depth - 1
            return
        _HELD.pop(self.path, None)
        if (self._holder() or {}).get("pid") == self.owner["pid"]:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------- records
_BOOL = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
_OPTIONAL_NUMBERS = ("x1", "y1", "x2", "y2", "gt_x1", "gt_y1", "gt_x2", "gt_y2")


def _problem(row: dict[str, str]) -> str | None:
    """Why a parsed record cannot be used (None: it is fine)."""
    for name in ("grid_id", "cell"):
        value = row[name].strip()
        try:
            number = float(value)
        except ValueError:
            return f"{name} {value!r} is not a whole number" if value else f"{name} is missing"
        if not math.isfinite(number) or number != int(number) or number < 0:
            return f"{name} {value!r} is not a whole number >= 0"
    iou = row["iou"].strip()
    try:
        value = float(iou)
    except ValueError:
        return f"iou {iou!r} is not a number" if iou else "iou is missing"
    if not 0.0 <= value <= 1.0:
        return f"iou {iou} is outside [0, 1]"
    if row["hit"].strip().lower() not in _BOOL:
        return f"hit {row['hit']!r} is not True or False"
    if row["seen"].strip() and row["seen"].strip().lower() not in _BOOL:
        return f"seen {row['seen']!r} is not True, False or empty"
    for name in (*_OPTIONAL_NUMBERS, "seconds"):
        text = row[name].strip()
        if text:
            try:
                number = float(text)
            except ValueError:
                return f"{name} {text!r} is not a number"
            if not math.isfinite(number) or (name == "seconds" and number < 0):
                return f"{name} {text} is not a finite number{' >= 0' if name == 'seconds' else ''}"
    return None


def quarantine_path(path: str | Path) -> Path:
    """Where bad lines of a records file go (`run.csv` -> `run.quarantine.txt`), appended, never replaced."""
    return Path(path).with_suffix(".quarantine.txt")


def read_records(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """The usable records of a results CSV, repairing the file in place when it holds bad lines.

    Checked line by line: UTF-8 text, the field count, whole-number `grid_id` / `cell`, `iou` in [0, 1],
    booleans, finite coordinates, one record per (grid_id, cell). Bad lines, duplicates and a torn last line
    (a run killed while writing) are appended to `quarantine_path(path)` with their line number and reason;
    records of failed queries (non-empty `error`) are dropped so that the next run computes them again.
    The file is then rewritten with the good lines, byte for byte, and a `RecordsRepairedWarning` says what
    was done. A file whose header is not a records header is refused (nothing is changed).
    """
    path = Path(path)
    lines, torn = _lines(path)
    if not lines:
        return pd.DataFrame(columns=list(columns))
    if torn and len(lines) == 1 and ",".join(columns).startswith(lines[0].decode("utf-8", "replace")):
        path.write_bytes(b"")  # killed while writing the header: nothing was recorded yet
        warnings.warn(f"{path}: cut a header torn by a stopped run (no records were in the file)",
                      RecordsRepairedWarning, stacklevel=4)  # fmt: skip
        return pd.DataFrame(columns=list(columns))
    keep, bad, failed = _scan(path, lines, torn, columns)
    if bad or failed:
        _repair(path, keep, bad, len(failed), len(keep) - 1)
    body = b"\n".join(keep) + b"\n"
    return pd.read_csv(io.BytesIO(body), keep_default_na=False, na_values=[""])


def read_records_unchanged(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Every record of a results CSV, failed queries included, checked as `read_records` checks them but
    read only: a file with a bad, repeated or torn line, or with no records, is refused with what to do.
    """
    path = Path(path)
    lines, torn = _lines(path)
    if len(lines) <= 1:
        cut = " (its header was cut: the run that created it was stopped)" if torn else ""
        raise ValueError(f"{path} holds no records yet{cut}; run the bench command that writes it first")
    keep, bad, failed = _scan(path, lines, torn, columns)
    if bad:
        shown = "; ".join(f"line {n}: {r}" for n, r, _ in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        raise ValueError(f"{path} has {len(bad)} unusable line(s) ({shown}); if a bench run is writing it, wait "
                         "for it to end, otherwise rerun the same bench command with the same --out, which moves "
                         "them to a quarantine file")  # fmt: skip
    frame = pd.read_csv(
        io.BytesIO(b"\n".join([*keep, *failed]) + b"\n"), keep_default_na=False, na_values=[""]
    )
    twice = frame[frame.duplicated(["grid_id", "cell"], keep=False)]
    if len(twice):  # a failed query next to another record of the same cell
        raise ValueError(f"{path} holds grid {int(twice.grid_id.iloc[0])} cell {int(twice.cell.iloc[0])} twice (a "
                         "failed query and another record); rerun the same bench command with the same --out, "
                         "which keeps one")  # fmt: skip
    return frame


def _lines(path: Path) -> tuple[list[bytes], bool]:
    """The file's lines (none for an empty file) and whether the last one is torn (no final newline)."""
    raw = path.read_bytes()
    if not raw.strip():
        return [], False
    lines = raw.split(b"\n")
    torn = lines[-1] != b""  # a complete file ends with a newline
    return (lines if torn else lines[:-1]), torn


def _scan(
    path: Path, lines: list[bytes], torn: bool, columns: Sequence[str]
) -> tuple[list[bytes], list[tuple[int, str, bytes]], list[bytes]]:
    """Sort a records file's lines: the header and good records, bad lines (number, reason, content), and
    records of failed queries. A file whose header is not a records header is refused."""
    try:
        header_text = lines[0].decode("utf-8")
        header = next(csv.reader([header_text]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        header = []
    missing = [c for c in columns if c not in header]
    if missing or (torn and len(lines) == 1):
        raise ValueError(f"{path} line 1 is not a records header (missing columns {missing}), so this is not a "
                         "results file of this benchmark; move it away or choose another --out")  # fmt: skip
    keep: list[bytes] = [lines[0]]
    bad: list[tuple[int, str, bytes]] = []
    failed: list[bytes] = []
    first_line: dict[tuple[int, int], int] = {}
    i = 1
    while i < len(lines):
        number = i + 1
        if torn and i == len(lines) - 1:
            bad.append((number, "torn last line (no newline: a run stopped while writing it)", lines[i]))
            break
        try:
            first = lines[i].decode("utf-8")
        except UnicodeDecodeError:
            bad.append((number, "not UTF-8 text", lines[i]))
            i += 1
            continue
        # A quoted field may span lines: read one record, which may take several physical lines.
        reader = csv.reader(_decoded(lines, i, first, torn))
        try:
            fields = next(reader)
            used = reader.line_num
        except (csv.Error, StopIteration, UnicodeDecodeError):
            fields, used = None, 1
        chunk = b"\n".join(lines[i : i + used])
        if fields is None or len(fields) != len(header):
            reason = (
                "not a CSV record"
                if fields is None
                else f"{len(fields)} fields, the header has {len(header)}"
            )
            bad.append((number, reason, lines[i]))
            i += 1  # only this line: a stray quote must not swallow the good lines after it
            continue
        row = dict(zip(header, fields, strict=True))
        reason = _problem(row)
        if reason is not None:
            bad.append((number, reason, chunk))
            i += used
            continue
        key = (int(float(row["grid_id"])), int(float(row["cell"])))
        if row["error"].strip():
            failed.append(chunk)
        elif key in first_line:
            bad.append((number, f"second record of grid {key[0]} cell {key[1]} (first on line {first_line[key]})",
                        chunk))  # fmt: skip
        else:
            first_line[key] = number
            keep.append(chunk)
        i += used
    return keep, bad, failed


def _decoded(lines: list[bytes], start: int, first: str, torn: bool):
    yield first + "\n"
    end = len(lines) - (1 if torn else 0)
    for line in lines[start + 1 : end]:
        yield line.decode("utf-8") + "\n"


def _repair(path: Path, keep: list[bytes], bad: list[tuple[int, str, bytes]], failed: int, kept: int) -> None:
    side = quarantine_path(path)
    notes = []
    if bad:
        with side.open("ab") as f:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for number, reason, content in bad:
                f.write(f"# {stamp} {path.name} line {number}: {reason}\n".encode())
                f.write(content + b"\n")
        shown = "; ".join(f"line {n}: {r}" for n, r, _ in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        notes.append(f"moved {len(bad)} bad line(s) to {side} ({shown})")
    if failed:
        notes.append(f"dropped {failed} record(s) of failed queries, which this run computes again")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"\n".join(keep) + b"\n")
    os.replace(tmp, path)  # atomic: a crash now leaves either the old file or the new one
    warnings.warn(f"{path}: {'; '.join(notes)}; the {kept} valid record(s) are kept", RecordsRepairedWarning,
                  stacklevel=4)  # fmt: skip


def count_records(path: str | Path) -> int:
    """Complete records in a results CSV (newline-terminated lines after the header); 0 if it is absent."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return 0
    return max(0, raw.count(b"\n") - 1)


# ---------------------------------------------------------------------------------------------- summaries
SUMMARY_KEY = ("method", "model", "cam")


def merge_summary(path: str | Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Write `rows` into the summary CSV at `path`, keeping rows of other runs (other method, model or CAM).

    A row with the same method, model and CAM is this run's own (same records file), so it is updated.
    Returns the merged table and how many earlier rows were kept. An unreadable summary is not replaced:
    a ValueError says so.
    """
    path = Path(path)
    kept = 0
    merged = rows
    if path.exists() and path.stat().st_size > 0:
        try:
            before = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise ValueError(
                f"{path} is not a summary this command can merge into ({err}); move it away"
            ) from err
        if not set(SUMMARY_KEY) <= set(before.columns):
            raise ValueError(f"{path} is not a summary (no {', '.join(SUMMARY_KEY)} columns); move it away")
        mine = set(rows[list(SUMMARY_KEY)].astype(str).itertuples(index=False, name=None))
        keys = before[list(SUMMARY_KEY)].astype(str).itertuples(index=False, name=None)
        others = before[[k not in mine for k in keys]]
        kept = len(others)
        merged = pd.concat([others, rows], ignore_index=True) if kept else rows
    tmp = path.with_name(path.name + ".tmp")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return merged, kept
