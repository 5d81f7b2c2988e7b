"""Row-level access to an nbgrader gradebook (SQLite or PostgreSQL) for the parallel autograder.

nbgrader's own `Gradebook` commits after every call, so "create the submission, then fill in its
grades" can be cut in half by a crash. The functions here move whole submissions between two
gradebooks with SQLAlchemy Core, each move in ONE transaction, using nbgrader's own table
definitions (`nbgrader.api.Base.metadata`), so the schema is exactly nbgrader's:

    copy_assignment(master, template, name)    the assignment's definition (cells, checksums, points)
                                               into an empty per-student gradebook
    read_submission(worker, name, student)     one autograded submission as plain rows
    merge_submission(master, rows, force)      write those rows into the master gradebook, atomically
    graded_students(master, name)              who already has a recorded submission

A submission is present in the master gradebook only when all its rows are (one transaction), so
"recorded" is the marker of "done": a re-run skips it, a crash never leaves half of one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, select, delete, and_, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError


class GradebookError(RuntimeError):
    """The gradebook is missing something the step needs (e.g. the assignment was never released)."""


def tables():
    from nbgrader.api import Base  # nbgrader is an instructor dependency, imported on use

    return Base.metadata.tables


def normalize_db_url(db_url: str) -> str:
    """`postgresql://...` with the driver the course installs (psycopg2-binary).

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; requirements.txt ships psycopg2, so the
    bare form is pointed at it unless psycopg 3 is importable. Other URLs pass unchanged.
    """
    if not isinstance(db_url, str) or "://" not in db_url:
        raise ValueError(f"db_url: expected an SQLAlchemy URL such as 'sqlite:////abs/gradebook.db' or "
                         f"'postgresql://user@host:port/db', got {db_url!r}")
    if db_url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            return "postgresql+psycopg2://" + db_url.split("://", 1)[1]
    return db_url


def engine(db_url: str, create: bool = False) -> Engine:
    """An engine for `db_url`; SQLite waits (instead of failing) while another writer holds the lock.

    create: allow a new SQLite file; otherwise a missing one is an error (SQLite would silently
    create an empty gradebook, and every later step would fail on missing tables).
    """
    db_url = normalize_db_url(db_url)
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[-1]
        if not create and path and path != ":memory:" and not Path(path).exists():
            raise GradebookError(f"no gradebook at {path}: release the assignment first "
                                 f"(`python -m gated_lib.autograde release NAME`), or pass --db-url")
        return create_engine(db_url, future=True, connect_args={"timeout": 120})
    return create_engine(db_url, future=True, pool_pre_ping=True)


def ensure_schema(db_url: str, alembic_version: str | None) -> None:
    """Create nbgrader's tables in an empty database, stamped with the master's alembic version.

    (nbgrader's `Gradebook()` would shell out to `alembic` for the version; copying the master's
    stamp is both cheaper and exactly right.)
    """
    from nbgrader.api import Base

    eng = engine(db_url, create=True)
    try:
        Base.metadata.create_all(bind=eng)
        with eng.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version "
                              "(version_num VARCHAR(32) NOT NULL)"))
            if alembic_version and not conn.execute(text("SELECT * FROM alembic_version")).first():
                conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                             {"v": alembic_version})
    finally:
        eng.dispose()


def alembic_version(db_url: str) -> str | None:
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return row[0] if row else None
    except Exception:
        return None
    finally:
        eng.dispose()


def _rows(conn, table, where) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(select(table).where(where))]


def assignment_rows(db_url: str, name: str) -> dict[str, list[dict]]:
    """The rows that define assignment `name` (course, assignment, notebooks, cells) in a gradebook."""
    t = tables()
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            a = _rows(conn, t["assignment"], t["assignment"].c.name == name)
            if not a:
                raise GradebookError(
                    f"assignment {name!r} is not in the gradebook {_safe(db_url)}: release it first "
                    f"(`python -m gated_lib.autograde release {name}`)")
            nbs = _rows(conn, t["notebook"], t["notebook"].c.assignment_id == a[0]["id"])
            nb_ids = [n["id"] for n in nbs]
            base = _rows(conn, t["base_cell"], t["base_cell"].c.notebook_id.in_(nb_ids))
            ids = [c["id"] for c in base]
            out = {
                "course": _rows(conn, t["course"], t["course"].c.id == a[0]["course_id"]),
                "assignment": a,
                "notebook": nbs,
                "base_cell": base,
                "grade_cells": _rows(conn, t["grade_cells"], t["grade_cells"].c.id.in_(ids)),
                "solution_cells": _rows(conn, t["solution_cells"], t["solution_cells"].c.id.in_(ids)),
                "task_cells": _rows(conn, t["task_cells"], t["task_cells"].c.id.in_(ids)),
                "source_cell": _rows(conn, t["source_cell"], t["source_cell"].c.notebook_id.in_(nb_ids)),
            }
    finally:
        eng.dispose()
    return out


def copy_assignment(master_url: str, template_url: str, name: str) -> None:
    """Copy the definition of `name` from the master gradebook into a fresh (empty) gradebook.

    The per-student gradebooks are built from the master rather than by re-running
    generate_assignment: the hidden tests and points that grade a student are then exactly the ones
    recorded at release, as with a plain `nbgrader autograde` (and it costs no nbgrader start-up).
    """
    rows = assignment_rows(master_url, name)
    ensure_schema(template_url, alembic_version(master_url))
    t = tables()
    eng = engine(template_url, create=True)
    try:
        with eng.begin() as conn:
            for tname in ("course", "assignment", "notebook", "base_cell", "grade_cells",
                          "solution_cells", "task_cells", "source_cell"):
                table = t[tname]
                for row in rows[tname]:
                    if tname == "course" and conn.execute(
                            select(table).where(table.c.id == row["id"])).first():
                        continue
                    conn.execute(table.insert().values(**row))
    finally:
        eng.dispose()


def graded_students(db_url: str, name: str) -> set[str]:
    """Students with a recorded submission of `name` in the gradebook (empty if none)."""
    t = tables()
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            sa, a = t["submitted_assignment"], t["assignment"]
            q = select(sa.c.student_id).join(a, a.c.id == sa.c.assignment_id).where(a.c.name == name)
            return {r[0] for r in conn.execute(q)}
    finally:
        eng.dispose()


def read_submission(db_url: str, name: str, student: str) -> dict[str, list[dict]]:
    """The rows of one submission (student, submission, notebooks, grades, comments) of a gradebook."""
    t = tables()
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            sa, a = t["submitted_assignment"], t["assignment"]
            q = (select(sa).join(a, a.c.id == sa.c.assignment_id)
                 .where(and_(a.c.name == name, sa.c.student_id == student)))
            subs = [dict(r._mapping) for r in conn.execute(q)]
            if not subs:
                raise GradebookError(f"no submission of {name!r} by {student!r} in {_safe(db_url)}")
            nbs = _rows(conn, t["submitted_notebook"], t["submitted_notebook"].c.assignment_id == subs[0]["id"])
            ids = [n["id"] for n in nbs]
            return {
                "student": _rows(conn, t["student"], t["student"].c.id == student),
                "submitted_assignment": subs,
                "submitted_notebook": nbs,
                "grade": _rows(conn, t["grade"], t["grade"].c.notebook_id.in_(ids)),
                "comment": _rows(conn, t["comment"], t["comment"].c.notebook_id.in_(ids)),
            }
    finally:
        eng.dispose()


def merge_submission(master_url: str, rows: dict[str, list[dict]], force: bool = False) -> bool:
    """Record one autograded submission in the master gradebook, all of it or nothing.

    rows: what `read_submission` returned for the student's private gradebook (same cell ids as the
    master, since that gradebook was built by `copy_assignment`).
    force: replace a submission already recorded; the human part of it (manual scores, extra
    credit, manual comments, the flag, an extension) is carried over so a regrade loses no
    grader's work. Without force an existing submission is left alone.
    Returns True when the submission was written, False when it was already there.
    """
    t = tables()
    sub = rows["submitted_assignment"][0]
    eng = engine(master_url)
    try:
        with eng.begin() as conn:
            sa = t["submitted_assignment"]
            old = _rows(conn, sa, and_(sa.c.assignment_id == sub["assignment_id"],
                                       sa.c.student_id == sub["student_id"]))
            keep_grade, keep_comment, keep_nb = {}, {}, {}
            if old:
                if not force:
                    return False
                old_nbs = _rows(conn, t["submitted_notebook"],
                                t["submitted_notebook"].c.assignment_id == old[0]["id"])
                nb_ids = [n["id"] for n in old_nbs]
                keep_nb = {n["notebook_id"]: n for n in old_nbs}
                keep_grade = {g["cell_id"]: g for g in _rows(conn, t["grade"], t["grade"].c.notebook_id.in_(nb_ids))}
                keep_comment = {c["cell_id"]: c for c in _rows(conn, t["comment"], t["comment"].c.notebook_id.in_(nb_ids))}
                conn.execute(delete(t["grade"]).where(t["grade"].c.notebook_id.in_(nb_ids)))
                conn.execute(delete(t["comment"]).where(t["comment"].c.notebook_id.in_(nb_ids)))
                conn.execute(delete(t["submitted_notebook"]).where(t["submitted_notebook"].c.id.in_(nb_ids)))
                conn.execute(delete(sa).where(sa.c.id == old[0]["id"]))
                if old[0].get("extension") is not None:
                    sub = {**sub, "extension": old[0]["extension"]}
            st = t["student"]
            if not conn.execute(select(st).where(st.c.id == sub["student_id"])).first():
                conn.execute(st.insert().values(**(rows["student"][0] if rows["student"] else {"id": sub["student_id"]})))
            conn.execute(sa.insert().values(**sub))
            for n in rows["submitted_notebook"]:
                prev = keep_nb.get(n["notebook_id"])
                conn.execute(t["submitted_notebook"].insert().values(
                    **{**n, "flagged": prev["flagged"] if prev else n["flagged"]}))
            for g in rows["grade"]:
                prev = keep_grade.get(g["cell_id"])
                if prev and (prev["manual_score"] is not None or prev["extra_credit"] is not None):
                    g = {**g, "manual_score": prev["manual_score"], "extra_credit": prev["extra_credit"],
                         "needs_manual_grade": False}
                conn.execute(t["grade"].insert().values(**g))
            for c in rows["comment"]:
                prev = keep_comment.get(c["cell_id"])
                if prev and prev["manual_comment"] is not None:
                    c = {**c, "manual_comment": prev["manual_comment"]}
                conn.execute(t["comment"].insert().values(**c))
        return True
    except IntegrityError:
        # Another process recorded the same submission between our check and our insert (two runs
        # on one PostgreSQL gradebook): the unique constraint kept one copy, which is what we want.
        if force:
            raise
        return False
    finally:
        eng.dispose()


def _safe(db_url: str) -> str:
    """The URL without a password, for messages."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", db_url)


def sqlite_url(path: str | Path) -> str:
    return "sqlite:///" + str(Path(path).resolve())


# ----------------------------------------------------------------------------- reading grades

def grade_rows(db_url: str, names: list[str] | None = None) -> list[dict]:
    """Every recorded grade, one dict per (submission, graded cell), for feedback, export, summary.

    Keys: assignment, student, notebook, cell (the grade_id), max_score, auto_score, manual_score,
    extra_credit, needs_manual_grade, score (nbgrader's rule: the manual score wins over the
    automatic one, plus extra credit; 0 when neither is set), cell_type ('code'/'markdown'),
    task (True for a task cell), manual_comment (of the same cell, if any).
    """
    t = tables()
    a, sa, sn, nb = t["assignment"], t["submitted_assignment"], t["submitted_notebook"], t["notebook"]
    g, bc, gc, tc, cm = t["grade"], t["base_cell"], t["grade_cells"], t["task_cells"], t["comment"]
    q = (select(a.c.name.label("assignment"), sa.c.student_id.label("student"),
                nb.c.name.label("notebook"), bc.c.name.label("cell"), bc.c.type.label("type"),
                gc.c.max_score.label("g_max"), gc.c.cell_type.label("g_type"),
                tc.c.max_score.label("t_max"), tc.c.cell_type.label("t_type"), g.c.auto_score, g.c.manual_score, g.c.extra_credit,
                g.c.needs_manual_grade, cm.c.manual_comment)
         .select_from(g)
         .join(sn, sn.c.id == g.c.notebook_id).join(sa, sa.c.id == sn.c.assignment_id)
         .join(a, a.c.id == sa.c.assignment_id).join(nb, nb.c.id == sn.c.notebook_id)
         .join(bc, bc.c.id == g.c.cell_id)
         .outerjoin(gc, gc.c.id == bc.c.id).outerjoin(tc, tc.c.id == bc.c.id)
         .outerjoin(cm, and_(cm.c.cell_id == g.c.cell_id, cm.c.notebook_id == g.c.notebook_id)))
    if names:
        q = q.where(a.c.name.in_(list(names)))
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            out = []
            for r in conn.execute(q):
                r = dict(r._mapping)
                task = r["type"] == "TaskCell"
                g_max, t_max, g_type, t_type = r.pop("g_max"), r.pop("t_max"), r.pop("g_type"), r.pop("t_type")
                max_score, cell_type = (t_max, t_type) if task else (g_max, g_type)
                base = r["manual_score"] if r["manual_score"] is not None else r["auto_score"]
                score = (base or 0.0) + (r["extra_credit"] or 0.0) if base is not None else 0.0
                out.append({**r, "max_score": float(max_score or 0.0), "cell_type": cell_type,
                            "task": task, "score": float(score)})
            return sorted(out, key=lambda d: (d["assignment"], d["student"], d["notebook"]))
    finally:
        eng.dispose()


def students(db_url: str) -> list[str]:
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            return sorted(r[0] for r in conn.execute(select(tables()["student"].c.id)))
    finally:
        eng.dispose()


def assignment_cells(db_url: str, name: str) -> list[dict]:
    """The graded cells of an assignment in notebook order: notebook, cell, max_score, task, source.

    Row order is not notebook order: callers that need it take it from the notebook; the source (locked cells only: tests, tasks) is what
    the gradebook holds, hidden tests and mark schemes included.
    """
    rows = assignment_rows(db_url, name)
    nb_name = {n["id"]: n["name"] for n in rows["notebook"]}
    src = {(nb_name[s["notebook_id"]], s["name"]): s["source"] for s in rows["source_cell"]}
    maxes = {c["id"]: (c["max_score"], False) for c in rows["grade_cells"]}
    maxes.update({c["id"]: (c["max_score"], True) for c in rows["task_cells"]})
    out = []
    for b in rows["base_cell"]:
        if b["id"] in maxes:
            key = (nb_name[b["notebook_id"]], b["name"])
            out.append({"notebook": key[0], "cell": b["name"], "max_score": float(maxes[b["id"]][0] or 0),
                        "task": maxes[b["id"]][1], "source": src.get(key, "")})
    return out


def source_cells(db_url: str, name: str) -> list[str]:
    """Sources of every cell the gradebook recorded for `name` (hidden tests and mark schemes included)."""
    return [s["source"] or "" for s in assignment_rows(db_url, name)["source_cell"]]
