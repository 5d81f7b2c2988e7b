"""nbgrader configuration of the course (instructor side).

Layout: solutions/<assignment>/<assignment>.ipynb are the *source* notebooks (full solutions and
hidden tests); `nbgrader generate_assignment` writes the student release into exercises/.
The gradebook (gradebook.db by default, in this folder) and submitted/, autograded/, feedback/ are
instructor data and are git-ignored.
"""

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "gated-rnns"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Only notebooks are part of an assignment; everything else a learner needs comes from gated_lib.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# nbgrader scores a test cell 0 when it writes to stderr. A library warning must never cost a learner
# points, so Python warnings are dropped from stderr before grading.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\w*Warning: "

# Autograding runs every submission in the sandbox (gated_lib/sandbox, docs/sandbox.md): the
# `gated-sandbox` kernel (resource limits, an unprivileged uid, bubblewrap without network and with
# the solutions and the gradebook hidden) and an anti-tamper guard; a runaway cell fails that cell
# after GATED_SANDBOX_CELL_TIMEOUT (120 s) instead of hanging the run, and a kernel that dies costs
# the remaining cells, not the submission. `nbgrader validate` (a learner checking their own work)
# uses the plain kernel; GATED_SANDBOX=on|off forces either way.
from gated_lib.sandbox.nbgrader import configure as _configure_sandbox  # noqa: E402

_configure_sandbox(c)

# Learners and autograder use the kernel of the environment nbgrader runs in (.venv).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
