"""Journal fragments: what one job of a run spread over CI jobs hands on, as a folder (a CI artifact).

A fragment holds the events the job wrote (`events.jsonl`), its recorded model responses, the decisions its
agents recorded (`ledger.md`), its transcripts, and `fragment.json` (written last: the kind, run, task, how many
events and their SHA-256, so a torn or edited artifact is refused instead of half-read). `squad plan --out`
writes the `plan` fragment, `squad task --out` a `task` fragment; `squad integrate` merges them into the run's
journal in one fixed order (`merge_records`).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.domain.events import JournalSchemaError, parse_event
from squad.domain.ids import TASK_RE, check_run
from squad.errors import SquadError, UsageError
from squad.infra.jsonl import JournalWarning, encode_line, iter_jsonl

FORMAT = 1
MANIFEST = "fragment.json"
EVENTS = "events.jsonl"
RESPONSES = "responses.jsonl"
LEDGER = "ledger.md"
TRANSCRIPTS = "transcripts"


class FragmentError(SquadError):
    """A fragment folder that cannot be used: missing, torn, of another format, or in conflict with another."""

    exit_code = 2


@dataclass(frozen=True)
class Fragment:
    """One job's part of a run, as read back from its folder."""

    path: Path
    kind: str  # "plan" | "task"
    run: str
    task: str | None
    digest: str  # SHA-256 of events.jsonl
    records: list[dict[str, Any]]
    responses: list[dict[str, Any]] = field(default_factory=list)
    ledger: str = ""
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.kind if self.task is None else f"task {self.task}"

    def summary(self) -> dict[str, Any]:
        """What `FragmentsMerged` records of it."""
        return {"kind": self.kind, "task": self.task, "events": len(self.records), "sha256": self.digest}


def write_fragment(
    out: Path,
    *,
    kind: str,
    run: str,
    task: str | None,
    records: Sequence[Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]] = (),
    ledger: str = "",
    transcripts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a fragment to the folder `out`, replacing only an earlier attempt of the same job's; return `out`.

    Built in a sibling temp folder and renamed into place, so `out` holds a whole fragment or none: a job killed
    meanwhile leaves the previous one (or nothing), never half of one.

    Raises:
        UsageError: `out` may not be written (`check_out`).
    """
    out = Path(out).absolute()
    check_out(out, kind=kind, run=run, task=task)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / TRANSCRIPTS).mkdir(parents=True)
    events = b"".join(encode_line(dict(r)) for r in records)
    (tmp / EVENTS).write_bytes(events)
    (tmp / RESPONSES).write_bytes(b"".join(encode_line(dict(r)) for r in responses))
    (tmp / LEDGER).write_text(ledger, encoding="utf-8")
    for name, lines in sorted((transcripts or {}).items()):
        if TASK_RE.fullmatch(name):
            (tmp / TRANSCRIPTS / f"{name}.jsonl").write_bytes(b"".join(encode_line(dict(r)) for r in lines))
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "run": run,
        "task": task,
        "events": len(records),
        "sha256": hashlib.sha256(events).hexdigest(),
        **(meta or {}),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return _place(tmp, out)


def copy_fragment(fragment: Fragment, out: Path) -> Path:
    """Write `fragment` to the folder `out` byte for byte (its files as they are, the manifest last), replacing
    only an earlier attempt of the same job's; return `out`. A job that reuses its earlier fragment hands on the
    very same artifact, so its rerun's upload changes nothing.

    Raises:
        UsageError: `out` may not be written (`check_out`).
    """
    out = Path(out).absolute()
    check_out(out, kind=fragment.kind, run=fragment.run, task=fragment.task)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / TRANSCRIPTS).mkdir(parents=True)
    src = Path(fragment.path)
    names = [EVENTS, RESPONSES, LEDGER, *(f"{TRANSCRIPTS}/{name}.jsonl" for name in sorted(fragment.transcripts))]
    for name in names:
        path = src / name
        if path.is_file() and not path.is_symlink():  # read_fragment skipped symlinks: so does the copy
            (tmp / name).write_bytes(path.read_bytes())
    events = (tmp / EVENTS).read_bytes() if (tmp / EVENTS).is_file() else b""
    if hashlib.sha256(events).hexdigest() != fragment.digest:  # changed since it was read: refuse a torn copy
        shutil.rmtree(tmp, ignore_errors=True)
        raise FragmentError(f"{src / EVENTS} changed while it was copied", hint="rerun the job")
    (tmp / MANIFEST).write_bytes((src / MANIFEST).read_bytes())
    return _place(tmp, out)


def built_on(fragment: Fragment) -> tuple[str, dict[str, str | None]] | None:
    """What a task fragment's work was built on, as its job recorded it in the manifest (`built_on`): the run's
    base commit and each dependency's approved commit (None: not approved). None when the fragment does not say
    (written by an older squad) or says it in another shape."""
    found = fragment.meta.get("built_on")
    if not isinstance(found, dict):
        return None
    base, deps = found.get("base"), found.get("deps")
    if not isinstance(base, str) or not isinstance(deps, dict):
        return None
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in deps.items()):
        return None
    return base, dict(deps)


def _place(tmp: Path, out: Path) -> Path:
    """Move the finished fragment `tmp` to `out` (synced first), replacing what `out` held in one rename."""
    _fsync_tree(tmp)
    if out.is_dir() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)  # onto a missing or empty folder
    return out


def check_out(out: Path, *, kind: str, run: str, task: str | None) -> None:
    """Refuse an `--out` folder whose contents a job's fragment would replace, unless they are an earlier attempt
    of the same job (the fragment of the same run, kind and task: a rerun replaces it). Checked when a job starts,
    before it spends anything, and again when it writes.

    Raises:
        UsageError: `out` is a file or a symbolic link, holds things that are not a fragment, or holds the fragment
            of another run, kind or task (exit 2: nothing is replaced).
    """
    out = Path(out)
    hint = f"choose another --out folder (a new or empty one), or remove {out} if what it holds is not needed"
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} is not a folder", hint=hint)
    if not out.is_dir() or not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if not manifest.is_file() or manifest.is_symlink():
        raise UsageError(f"--out {out} is not empty and holds no squad fragment", hint=hint)
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {out} holds a {MANIFEST} that cannot be read ({exc})", hint=hint) from None
    if not isinstance(meta, dict):
        raise UsageError(f"--out {out} holds a {MANIFEST} that is not a squad fragment's", hint=hint)
    found = (meta.get("run"), meta.get("kind"), meta.get("task") if meta.get("kind") == "task" else None)
    if found != (run, kind, task if kind == "task" else None):
        raise UsageError(
            f"--out {out} holds the {_label(found[1], found[2])} of run {found[0]}; writing the "
            f"{_label(kind, task)} of run {run} there would replace it",
            hint=hint,
        )


def _label(kind: object, task: object) -> str:
    return "plan fragment" if kind == "plan" else f"fragment of {kind} {task!r}"


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_fragment(folder: Path) -> Fragment:
    """The fragment in `folder`.

    Raises:
        FragmentError: no manifest, another format, a symlink, events that do not match the manifest, or an
            event this release cannot read (named by file:line).
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    for path in (folder, manifest_path, folder / EVENTS):
        if path.is_symlink():
            raise FragmentError(f"{path} is a symbolic link; a fragment is plain files")
    try:
        meta = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FragmentError(f"{folder} holds no {MANIFEST}: not a squad fragment") from None
    except (OSError, ValueError) as exc:
        raise FragmentError(f"{manifest_path}: unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FragmentError(f"{manifest_path}: fragment format {meta.get('format')!r}; this squad reads {FORMAT}")
    kind, run, task = meta.get("kind"), meta.get("run"), meta.get("task")
    if kind not in ("plan", "task") or not isinstance(run, str):
        raise FragmentError(f"{manifest_path}: kind must be plan or task, with a run id")
    check_run(run)
    if kind == "task" and not (isinstance(task, str) and TASK_RE.fullmatch(task)):
        raise FragmentError(f"{manifest_path}: a task fragment names its task (got {task!r})")
    events_path = folder / EVENTS
    data = events_path.read_bytes() if events_path.is_file() else b""
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("sha256"):
        raise FragmentError(
            f"{events_path} does not match {MANIFEST} (torn or edited artifact)",
            hint="rerun the job that wrote it",
        )
    records = list(_typed_records(events_path))
    if len(records) != meta.get("events"):
        raise FragmentError(f"{events_path}: {len(records)} events, {MANIFEST} says {meta.get('events')}")
    transcripts = {}
    tdir = folder / TRANSCRIPTS
    if tdir.is_dir() and not tdir.is_symlink():
        for path in sorted(tdir.glob("*.jsonl")):
            if TASK_RE.fullmatch(path.stem) and not path.is_symlink():
                transcripts[path.stem] = [r for _, r in _quiet(path)]
    ledger_path = folder / LEDGER
    ledger = ledger_path.read_text(encoding="utf-8") if ledger_path.is_file() and not ledger_path.is_symlink() else ""
    responses_path = folder / RESPONSES
    responses = [r for _, r in _quiet(responses_path)] if not responses_path.is_symlink() else []
    return Fragment(
        path=folder,
        kind=kind,
        run=run,
        task=task if kind == "task" else None,
        digest=digest,
        records=records,
        responses=responses,
        ledger=ledger,
        transcripts=transcripts,
        meta=meta,
    )


def _quiet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalWarning)
        yield from iter_jsonl(path)


def _typed_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a fragment's events.jsonl, each checked to be an event this release reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", JournalWarning)  # a fragment is written whole: a bad line is damage
        try:
            for number, record in iter_jsonl(path):
                try:
                    parse_event(record)
                except (JournalSchemaError, ValueError) as exc:
                    raise FragmentError(f"{path}:{number}: {exc}") from None
                yield record
        except JournalWarning as exc:
            raise FragmentError(str(exc), hint="rerun the job that wrote it") from None


def find_fragments(folders: Sequence[Path], run: str) -> list[Fragment]:
    """The fragments of `run` in `folders`: each folder is a fragment, or holds fragments one level down
    (as `actions/download-artifact` lays out several artifacts). Other runs' fragments are left out.

    Raises:
        FragmentError: a folder is missing or holds no fragment at all, two fragments of one job differ, or
            a fragment is damaged.
    """
    found: dict[tuple[str, str | None], Fragment] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FragmentError(f"--from {folder}: no such folder")
        candidates = [folder]
        if not (folder / MANIFEST).is_file():
            candidates = sorted(p.parent for p in folder.glob(f"*/{MANIFEST}"))
        if not candidates:
            raise FragmentError(f"--from {folder}: no squad fragment in it (nor one level down)")
        for path in candidates:
            fragment = read_fragment(path)
            if fragment.run != run:
                continue
            key = (fragment.kind, fragment.task)
            other = found.get(key)
            if other is not None and other.digest != fragment.digest:
                raise FragmentError(
                    f"two different fragments of {fragment.label}: {other.path} and {path}",
                    hint="keep the one of the job's last attempt",
                )
            found.setdefault(key, fragment)
    return list(found.values())


def merge_records(plan: Fragment, tasks: Sequence[Fragment], order: Sequence[str]) -> list[dict[str, Any]]:
    """One journal from the plan fragment and task fragments, in a fixed order.

    The plan's events come first (they start the run). The task jobs' events follow, merged by
    (timestamp, the task's place in `order` (the plan), position in its fragment): each fragment's own order is
    kept whatever the clocks of the runners say (a merge never reorders within one input), and the same
    fragments give the same journal, byte for byte, however they were found.
    """
    rank = {task: i for i, task in enumerate(order)}
    ranked = sorted(tasks, key=lambda f: (rank.get(f.task or "", len(rank)), f.task or ""))
    streams = [[(float(r.get("ts") or 0.0), n, i, r) for i, r in enumerate(f.records)] for n, f in enumerate(ranked)]
    merged = heapq.merge(*streams, key=lambda item: item[:3])
    return [*plan.records, *(item[3] for item in merged)]
