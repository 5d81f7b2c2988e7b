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

# A runaway cell (an infinite loop in a submission) fails that cell instead of hanging the run.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Learners and autograder use the kernel of the environment nbgrader runs in (.venv).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
