"""The instructor's workflow: release, collect, and a parallel autograde that loses nothing.

A course root is the folder of `gated_lib.course` (nbgrader_config.py, solutions/, exercises/,
submitted/, autograded/, feedback/); the gradebook is `db_url` (default: SQLite <root>/gradebook.db).

    release(root, names)                 generate_assignment into the gradebook, then validate
    collect(root, source)                submissions from a folder <student>/<assignment>/ or a zip
    autograde(root, name, workers=N)     grade every submission not yet recorded, N at a time

How `autograde` stays safe (see the package docstring for the why):

    for each student, in a worker thread:
        <root>/.autograde_work/<student>-<assignment>/   a private course root: the config, the
            submission, and a gradebook holding only the assignment's definition (copied from
            the master gradebook); `nbgrader autograde` runs there in its own process
    in the main thread, one student at a time, as each worker finishes:
        move the autograded notebook into <root>/autograded/<student>/<assignment>/
        write the student's rows into the master gradebook in ONE transaction  <- "done" marker

Only the main thread writes to the master gradebook, and only one run per course root may be
active (an exclusive lock on <root>/.autograde.lock, released by the kernel if the run dies).

With executor="dask" the per-student step is a Dask task (`_grade_task`: the submission, config and
assignment-only gradebook go to the worker as bytes, the autograded files and the grade rows come
back); the main thread then does exactly the local publish + one-transaction merge. Why the
client merges, not the workers: see the package docstring.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gated_lib import course
from gated_lib.autograde import gradebook as gbk

WORK_DIR = ".autograde_work"
KERNEL_LITTER = (".ipython", ".ipynb_checkpoints", ".jupyter", ".local", ".cache", ".config",
                 "__pycache__")
LOCK_FILE = ".autograde.lock"
# A student id becomes a folder name and a database key: no separators, no leading dot.
STUDENT_RE = re.compile(r"^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,127}$")


class WorkflowError(RuntimeError):
    """A workflow step cannot go on; the message says what to fix."""


# ----------------------------------------------------------------------------- helpers

def db_url_for(root: str | os.PathLike, db_url: str | None) -> str:
    """The gradebook URL: `db_url` (driver made explicit), or SQLite <root>/gradebook.db."""
    return gbk.normalize_db_url(db_url) if db_url else course.default_db_url(root)


def _check_root(root) -> Path:
    root = Path(root).resolve()
    if not (root / course.CONFIG_FILE).is_file():
        raise WorkflowError(f"root: expected a course root holding {course.CONFIG_FILE}, got {root}")
    return root


def _check_names(root: Path, names, what: str = "names") -> list[str]:
    known = course.assignments(root)
    names = list(names) if names else known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise WorkflowError(f"{what}: unknown assignment(s) {unknown}; expected one of {known} "
                            f"(folders of {root / course.SOURCE_DIR})")
    return names


def _check_student(student: str, where: str = "student") -> str:
    if not isinstance(student, str) or not STUDENT_RE.match(student):
        raise WorkflowError(f"{where}: expected a student id of letters, digits and . _ @ + - "
                            f"(not starting with '.'), got {student!r}")
    return student


def submitted_students(root: str | os.PathLike, name: str) -> list[str]:
    """Students with a submission folder <root>/submitted/<student>/<name>/ holding a notebook."""
    base = Path(root) / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if (p / name).is_dir() and any((p / name).glob("*.ipynb")) and STUDENT_RE.match(p.name))


# ----------------------------------------------------------------------------- release

@dataclass
class ReleaseReport:
    name: str
    release_dir: Path
    problems: list[str] = field(default_factory=list)


def validate_notebook(root: Path, path: Path, invert: bool = False) -> dict:
    """Run nbgrader's Validator on `path` with the course's configuration; returns its results dict.

    In-process (the kernel is a separate process anyway) so that the results come back as data
    rather than as text to parse.
    """
    from nbgrader.validator import Validator
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader(course.CONFIG_FILE, path=str(root)).load_config()
    return Validator(config=cfg, invert=invert).validate(str(path))


def _is_comment_only(source: str) -> bool:
    return all(not line.strip() or line.strip().startswith("#") for line in source.splitlines())


def release(root: str | os.PathLike, names: list[str] | None = None, db_url: str | None = None,
            validate: bool = True) -> list[ReleaseReport]:
    """`nbgrader generate_assignment` each assignment into the gradebook, then validate it.

    Validation runs the notebooks: the source (solutions/) must pass every test cell, and in the
    student release no test cell may pass except those left with comments only (a test cell that
    is all hidden tests). A problem does not stop the release; it is returned (and the CLI fails).
    """
    root = _check_root(root)
    reports = []
    for name in _check_names(root, names):
        out = course.generate(root, name, db_url_for(root, db_url))
        rep = ReleaseReport(name, out)
        if validate:
            src = root / course.SOURCE_DIR / name / f"{name}.ipynb"
            res = validate_notebook(root, src)
            for key in ("type_changed", "changed", "failed"):
                for cell in res.get(key, []):
                    err = cell.get("raw_error", "").strip().splitlines()[-1:] or [""]
                    rep.problems.append(f"{name}: solution notebook, cell {key}: "
                                        f"{cell['source'][:80]!r} {err[0]}")
            blank = out / f"{name}.ipynb"
            res = validate_notebook(root, blank, invert=True)
            for cell in res.get("passed", []):
                if not _is_comment_only(cell["source"]):
                    rep.problems.append(f"{name}: a test cell passes on the blank release (it gives "
                                        f"points for doing nothing): {cell['source'][:80]!r}")
        reports.append(rep)
    return reports


# ----------------------------------------------------------------------------- collect

@dataclass
class CollectReport:
    collected: list[tuple[str, str]] = field(default_factory=list)   # (student, assignment)
    skipped: list[str] = field(default_factory=list)                 # why each entry was left out


def _install(root: Path, student: str, name: str, files: dict[str, bytes]) -> None:
    """Replace <root>/submitted/<student>/<name>/ by `files` (relative path -> content), atomically.

    Written beside the target, then renamed, so that an interrupted collect leaves either the old
    or the new submission, never half of one.
    """
    dest = root / "submitted" / student / name
    tmp = dest.parent / f".{name}.collect-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if dest.exists():
        old = dest.parent / f".{name}.old-{os.getpid()}"
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old)
    else:
        tmp.rename(dest)


def _safe_parts(rel: str) -> list[str] | None:
    """Path components of an archive entry, or None if it could escape its folder."""
    p = PurePosixPath(rel.replace("\\", "/"))
    parts = [x for x in p.parts if x not in ("", ".")]
    if p.is_absolute() or any(x == ".." for x in parts):
        return None
    return parts


def _group(entries: dict[str, bytes], known: list[str], assignment: str | None,
           pattern: re.Pattern, report: CollectReport) -> dict[tuple[str, str], dict[str, bytes]]:
    """Sort archive/folder entries into submissions: (student, assignment) -> {relpath: bytes}.

    Two layouts are understood:
      nested: [any/prefix/]<student>/<assignment>/<file...>  (nbgrader's submitted/ layout): the
              assignment folder is recognised by its name being a known assignment;
      flat:   <file>.ipynb whose name matches `pattern` (group `student`, optionally `assignment`),
              e.g. an LMS download "jdoe_02_deriving_lstm.ipynb"; saved as <assignment>.ipynb.
    """
    subs: dict[tuple[str, str], dict[str, bytes]] = {}
    for rel, data in sorted(entries.items()):
        parts = _safe_parts(rel)
        if parts is None:
            report.skipped.append(f"{rel}: unsafe path (absolute or '..')")
            continue
        if any(x.startswith(".") or x == "__MACOSX" for x in parts):
            continue   # .ipynb_checkpoints, macOS resource forks
        idx = [i for i, x in enumerate(parts[:-1]) if x in known and i >= 1]
        if idx:
            i = idx[-1]
            student, name = parts[i - 1], parts[i]
            if assignment and name != assignment:
                continue
            if not STUDENT_RE.match(student):
                report.skipped.append(f"{rel}: {student!r} is not a valid student id")
                continue
            subs.setdefault((student, name), {})["/".join(parts[i + 1:])] = data
            continue
        m = pattern.search(parts[-1]) if parts[-1].endswith(".ipynb") else None
        if m:
            student = m.group("student")
            name = m.groupdict().get("assignment") or assignment
            if name not in known:
                report.skipped.append(f"{rel}: no known assignment (give --assignment; known: {known})")
                continue
            if not STUDENT_RE.match(student or ""):
                report.skipped.append(f"{rel}: {student!r} is not a valid student id")
                continue
            subs.setdefault((student, name), {})[f"{name}.ipynb"] = data
            continue
        report.skipped.append(f"{rel}: not <student>/<assignment>/<file> and the file name does not "
                              f"match {pattern.pattern!r}")
    return subs


FLAT_PATTERN = r"^(?P<student>[A-Za-z0-9@+-][A-Za-z0-9.@+-]*)_"


def collect(root: str | os.PathLike, source: str | os.PathLike, assignment: str | None = None,
            pattern: str = FLAT_PATTERN) -> CollectReport:
    """Copy submissions from `source` (a folder or a .zip) into <root>/submitted/.

    source: a folder laid out <student>/<assignment>/... (a `submitted/` folder from elsewhere, or
    a folder holding one), or a zip file with that layout, or a zip of flat notebooks named
    "<student>_<anything>.ipynb" (then `assignment` says which assignment they are).
    A submission replaces the student's previous one of the same assignment (a re-collect is
    idempotent). Returns what was collected and what was skipped, with the reason.
    """
    root = _check_root(root)
    source = Path(source)
    known = course.assignments(root)
    if assignment is not None:
        _check_names(root, [assignment], "assignment")
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise WorkflowError(f"pattern: expected a regular expression with a (?P<student>...) group, "
                            f"got {pattern!r} ({e})") from None
    if "student" not in rx.groupindex:
        raise WorkflowError(f"pattern: expected a (?P<student>...) group, got {pattern!r}")
    entries: dict[str, bytes] = {}
    if source.is_dir():
        for p in sorted(source.rglob("*")):
            if p.is_file():
                entries[p.relative_to(source).as_posix()] = p.read_bytes()
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    entries[info.filename] = zf.read(info)
    else:
        raise WorkflowError(f"source: expected a folder <student>/<assignment>/ or a .zip file, "
                            f"got {str(source)!r} ({'missing' if not source.exists() else 'not a zip'})")
    report = CollectReport()
    for (student, name), files in _group(entries, known, assignment, rx, report).items():
        if not any(k.endswith(".ipynb") for k in files):
            report.skipped.append(f"{student}/{name}: no notebook")
            continue
        _install(root, student, name, files)
        report.collected.append((student, name))
    return report


# ----------------------------------------------------------------------------- autograde

@dataclass
class AutogradeReport:
    assignment: str
    graded: list[str] = field(default_factory=list)      # recorded in this run
    skipped: list[str] = field(default_factory=list)     # already recorded (re-run), left alone
    failed: dict[str, str] = field(default_factory=dict)  # student -> why; not recorded, retried next run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class _RunLock:
    """One autograde run per course root: an exclusive flock, which the kernel drops if we die."""

    def __init__(self, root: Path):
        self.path = root / LOCK_FILE

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise WorkflowError(f"another autograde is running on {self.path.parent} "
                                f"(pid {other or '?'}); wait for it or stop it") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _grade_one(root: Path, work: Path, template_db: Path, name: str, student: str,
               timeout: float) -> dict:
    """Autograde one student in a private course root; returns the submission's gradebook rows.

    Runs in a worker thread; the heavy work is the `nbgrader autograde` subprocess (which starts
    the kernel), so threads are enough and a killed subprocess only fails this one student.
    """
    priv = work / f"{student}-{name}"
    if priv.exists():
        shutil.rmtree(priv)
    priv.mkdir(parents=True)
    shutil.copy2(root / course.CONFIG_FILE, priv / course.CONFIG_FILE)
    shutil.copytree(root / "submitted" / student / name, priv / "submitted" / student / name,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy2(template_db, priv / "gradebook.db")
    url = gbk.sqlite_url(priv / "gradebook.db")
    course.nbgrader(["autograde", name, f"--student={student}", "--create", "--force"], priv, url,
                    timeout=timeout)
    produced = priv / "autograded" / student / name
    if not produced.is_dir():
        raise course.CourseError(f"nbgrader wrote no autograded folder for {student}")
    return gbk.read_submission(url, name, student)


def _publish(root: Path, work: Path, name: str, student: str, produced: Path | None = None) -> None:
    """Move the private autograded folder to <root>/autograded/<student>/<name>/ (rename: atomic).

    produced: the folder to publish (default: the private course root's autograded folder).
    """
    produced = produced or work / f"{student}-{name}" / "autograded" / student / name
    dest = root / "autograded" / student / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.parent / f".{name}.new-{os.getpid()}"
    if staged.exists():
        shutil.rmtree(staged)
    # Kernel state that a (sandboxed) kernel leaves in its working folder is not part of the result.
    shutil.copytree(produced, staged, ignore=shutil.ignore_patterns(*KERNEL_LITTER))
    if dest.exists():
        # rename the old one aside first: at every instant one complete folder is in place
        old = dest.parent / f".{name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        dest.rename(old)
        staged.rename(dest)
        shutil.rmtree(old)
    else:
        staged.rename(dest)


# ----------------------------------------------------------------------------- Dask executor

def _grade_task(task: dict) -> dict:
    """Autograde one student on a Dask worker; everything it needs comes in `task`, as bytes.

    task: name, student, timeout, config (nbgrader_config.py), template (the assignment-only SQLite
    gradebook), files ({relative path: bytes} of the submission folder).
    Returns {"student", "rows" (read_submission's rows), "files" ({relative path: bytes} of the
    autograded folder, kernel litter left out), "host"}. The worker needs the course's environment
    (gated_lib, nbgrader, the sandbox), not the course files nor access to the gradebook: it grades in
    a private temporary course root, removed afterwards whatever happens.
    """
    import socket
    import tempfile

    name, student = task["name"], _check_student(task["student"])
    base = Path(tempfile.mkdtemp(prefix=f"gated-autograde-{student}-"))
    try:
        priv = base / "course"
        sub = priv / "submitted" / student / name
        sub.mkdir(parents=True)
        (priv / course.CONFIG_FILE).write_bytes(task["config"])
        for rel, data in task["files"].items():
            parts = _safe_parts(rel)
            if not parts:
                raise WorkflowError(f"{student}: unsafe file name in the submission: {rel!r}")
            (sub / Path(*parts)).parent.mkdir(parents=True, exist_ok=True)
            (sub / Path(*parts)).write_bytes(data)
        (priv / "gradebook.db").write_bytes(task["template"])
        url = gbk.sqlite_url(priv / "gradebook.db")
        course.nbgrader(["autograde", name, f"--student={student}", "--create", "--force"], priv, url,
                        timeout=task["timeout"])
        produced = priv / "autograded" / student / name
        if not produced.is_dir():
            raise course.CourseError(f"nbgrader wrote no autograded folder for {student}")
        files = {}
        for p in sorted(produced.rglob("*")):
            rel = p.relative_to(produced)
            if p.is_file() and not p.is_symlink() and not any(x in KERNEL_LITTER for x in rel.parts):
                files[rel.as_posix()] = p.read_bytes()
        return {"student": student, "rows": gbk.read_submission(url, name, student), "files": files,
                "host": socket.gethostname()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _dask_results(root: Path, work: Path, template: Path, name: str, todo: list[str], workers: int,
                  scheduler: str | None, timeout: float):
    """Yield (student, fetch) as the Dask tasks finish; fetch() returns the rows or raises the task's
    error after writing the autograded files under <work>/<student>-<name>/autograded/... ."""
    try:
        from distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError:
        raise WorkflowError("executor='dask' needs dask.distributed: pip install 'dask[distributed]' "
                            "(requirements.txt)") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=60)
        except (OSError, TimeoutError, ValueError) as e:
            raise WorkflowError(f"scheduler: cannot reach the Dask scheduler at {scheduler!r} ({e}); "
                                f"start `dask scheduler` there, or leave --scheduler out") from None
    else:
        import dask

        # the scheduler's and the workers' scratch folders go into the work folder, removed after
        with dask.config.set({"temporary-directory": str(work / "dask")}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, local_directory=str(work / "dask"))
        client = Client(cluster)
    try:
        config, tmpl = (root / course.CONFIG_FILE).read_bytes(), template.read_bytes()
        futures = {}
        for student in todo:
            src = root / "submitted" / student / name
            files = {p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*"))
                     if p.is_file() and ".ipynb_checkpoints" not in p.relative_to(src).parts}
            task = {"name": name, "student": student, "timeout": timeout, "config": config,
                    "template": tmpl, "files": files}
            fut = client.submit(_grade_task, task, pure=False, key=f"autograde-{name}-{student}-{os.getpid()}-"
                                f"{time.monotonic_ns()}")
            futures[fut] = student
        for fut in dask_completed(list(futures)):
            student = futures[fut]

            def fetch(fut=fut, student=student):
                out = fut.result()
                dest = work / f"{student}-{name}" / "autograded" / student / name
                for rel, data in out["files"].items():
                    parts = _safe_parts(rel)
                    if not parts:
                        raise WorkflowError(f"{student}: unsafe file name from the worker: {rel!r}")
                    (dest / Path(*parts)).parent.mkdir(parents=True, exist_ok=True)
                    (dest / Path(*parts)).write_bytes(data)
                if not dest.is_dir():
                    dest.mkdir(parents=True)
                rows = out["rows"]
                if any(r.get("student_id", student) != student for r in rows.get("submitted_assignment", [])):
                    raise WorkflowError(f"{student}: the worker returned another student's rows")
                return rows

            yield student, fetch
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_results(root: Path, work: Path, template: Path, name: str, todo: list[str], workers: int,
                   timeout: float):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_grade_one, root, work, template, name, s, timeout): s for s in todo}
        for fut in as_completed(futures):
            yield futures[fut], fut.result


EXECUTORS = ("local", "dask")


def autograde(root: str | os.PathLike, name: str, students: list[str] | None = None,
              workers: int = 2, db_url: str | None = None, force: bool = False,
              timeout: float = 1800, log=None, executor: str = "local",
              scheduler: str | None = None) -> AutogradeReport:
    """Autograde every submission of `name` not yet in the gradebook, `workers` at a time.

    root: the course root; submissions are read from <root>/submitted/<student>/<name>/.
    students: restrict to these (default: every submitted student).
    workers: how many `nbgrader autograde` processes run at once (>= 1); with executor="dask" and no
        scheduler, the number of workers of the LocalCluster (a real cluster has its own).
    db_url: the master gradebook (default SQLite <root>/gradebook.db; PostgreSQL for large classes).
    force: regrade students already recorded (their manual grades and comments are kept).
    timeout: seconds one student's autograde may take before it counts as failed.
    log: a callable taking one line of progress (default: none).
    executor: "local" (threads, each running `nbgrader autograde` in a subprocess on this machine)
        or "dask" (one Dask task per student, see the package docstring).
    scheduler: with executor="dask", the scheduler's address (e.g. "tcp://host:8786"); None starts
        a LocalCluster of `workers` processes on this machine.
    Returns an AutogradeReport; failed students are not recorded, so the next run retries them.
    """
    t0 = time.monotonic()
    root = _check_root(root)
    _check_names(root, [name], "name")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise WorkflowError(f"workers: expected an integer >= 1, got {workers!r}")
    if executor not in EXECUTORS:
        raise WorkflowError(f"executor: expected one of {EXECUTORS}, got {executor!r}")
    if scheduler is not None and (executor != "dask" or not isinstance(scheduler, str) or not scheduler):
        raise WorkflowError(f"scheduler: a Dask scheduler address such as 'tcp://host:8786', with "
                            f"executor='dask'; got {scheduler!r} with executor={executor!r}")
    url = db_url_for(root, db_url)
    log = log or (lambda line: None)
    on_disk = submitted_students(root, name)
    if students:
        for s in students:
            _check_student(s, "students")
        missing = sorted(set(students) - set(on_disk))
        if missing:
            raise WorkflowError(f"students: no submission of {name} in {root / 'submitted'} for {missing}")
        todo = sorted(set(students))
    else:
        todo = on_disk
    report = AutogradeReport(name)
    gbk.assignment_rows(url, name)   # fails early, with the fix, if the assignment was never released
    with _RunLock(root):
        done = gbk.graded_students(url, name)
        if not force:
            report.skipped = [s for s in todo if s in done]
            todo = [s for s in todo if s not in done]
        if not todo:
            report.seconds = time.monotonic() - t0
            return report
        work = root / WORK_DIR
        if work.exists():
            shutil.rmtree(work)   # left by a run that was killed; we hold the lock, so it is stale
        work.mkdir()
        template = work / f"template-{name}.db"
        gbk.copy_assignment(url, gbk.sqlite_url(template), name)
        if executor == "dask":
            results = _dask_results(root, work, template, name, todo, workers, scheduler, timeout)
        else:
            results = _local_results(root, work, template, name, todo, workers, timeout)
        for student, fetch in results:
            try:
                rows = fetch()
                _publish(root, work, name, student)
                # The gradebook write comes last: once it is committed the student is done.
                gbk.merge_submission(url, rows, force=force)
                report.graded.append(student)
                log(f"graded {student} ({len(report.graded)}/{len(todo)})")
            except Exception as e:   # one bad submission must not stop the others
                msg = str(e).strip().splitlines()
                report.failed[student] = f"{type(e).__name__}: " + " | ".join(msg[-6:])
                log(f"FAILED {student}: {report.failed[student][:300]}")
            finally:
                shutil.rmtree(work / f"{student}-{name}", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    report.graded.sort()
    report.seconds = time.monotonic() - t0
    return report
