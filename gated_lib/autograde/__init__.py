"""Instructor autograding that is safe, parallel and loses nothing.

The workflow (CLI: `python -m gated_lib.autograde --help`; guide: docs/instructor_guide.md):

    release    nbgrader generate_assignment into the gradebook, then validate: the solutions pass
               every test, and no test of the blank release gives points for doing nothing
    collect    submissions from a folder <student>/<assignment>/... or from a zip export
    autograde  every submission not yet graded, N workers at a time
    feedback   one HTML per student that says which (hidden) check failed and how, without
               showing hidden tests or mark schemes (unlike nbgrader generate_feedback, #917)
    export     grades CSV: totals plus one column per graded cell
    summary    per-question pass rates (CSV) and a histogram of scores (PNG)

Why the autograder is built this way. `nbgrader autograde` on one gradebook from several processes
is not safe (SQLite writers collide, and nbgrader commits a submission before its grades, so a crash
leaves half-recorded students). Here each student is graded by its own `nbgrader autograde`
process in a private course root with a private SQLite gradebook that holds only the assignment's
definition, copied from the master gradebook (so the hidden tests and points are exactly those of
the release). When a worker finishes, the main process alone moves the autograded notebook into
place and then writes the student's rows into the master gradebook in one transaction. Hence:

* nothing is lost or duplicated: a student is in the gradebook entirely or not at all, and the
  (assignment, student) unique constraint forbids a second copy;
* a re-run is idempotent: students already recorded are skipped (``--force`` regrades them and
  keeps manual scores and comments);
* a crash (kill -9 of a worker, or of the whole run) loses only the students in flight; the next
  run grades exactly those;
* one run per course root at a time (an flock that the kernel releases if the run dies).

The master gradebook is SQLite (<root>/gradebook.db) by default, or any SQLAlchemy URL
(``--db-url postgresql://user@host:port/gradebook``) for large classes.

Beyond one machine (``executor="dask"``, CLI ``--scheduler tcp://host:8786``; without an address a
distributed.LocalCluster of ``workers`` processes): each Dask task grades one student in a private
temporary folder on the worker, exactly as a local worker does, and returns what the merge needs
(the autograded files and the student's gradebook rows, as bytes and plain dicts). The client, the
one process holding the course lock, publishes the files and merges the rows into the shared
gradebook in one transaction per student, as locally. Why the client merges rather than the worker
writing to PostgreSQL itself: the workers then need no database credentials nor network access to
the gradebook (they run student code, sandboxed but still), nor the course files (the submission
travels with the task, the autograded notebook comes back with the result); the gradebook has one
writer per run, so the lock, the skip-what-is-recorded re-run and the --force rules are the local
ones unchanged; and a worker that dies mid-task has written nothing anywhere. The cost is that
results pass through the client (a notebook of a few hundred kB per student: negligible next to
grading it).

Modules: workflow (release, collect, autograde), gradebook (transactional row copies with
nbgrader's schema), feedback, report (export, summary), __main__ (the CLI).
"""

from gated_lib.autograde.workflow import (AutogradeReport, CollectReport, WorkflowError, autograde,
                                          collect, release)
from gated_lib.autograde.feedback import FeedbackLeak, feedback_for, generate as generate_feedback
from gated_lib.autograde.report import export, question_stats, summary

__all__ = ["AutogradeReport", "CollectReport", "WorkflowError", "FeedbackLeak", "autograde", "collect",
           "release", "generate_feedback", "feedback_for", "export", "question_stats", "summary"]
