"""Write outside the submission's folder: another student's submission and autograded notebook, the
gradebook, the solutions, the course root, the repository, /tmp; and one file in its own folder."""

from tests.adversarial._nb import PART_A_TESTS, add_code_after, part_a_correct

DESCRIPTION = "write into other students' folders, the gradebook, the repository"
ZERO = ()

ATTACK = '''
import os, pathlib, gated_lib
here = pathlib.Path.cwd()                      # <root>/autograded/<student>/<assignment>
root = here.parents[2]
repo = pathlib.Path(gated_lib.__file__).resolve().parents[1]
name = here.name
targets = {
    "gradebook": root / "gradebook.db",
    "victim submission": root / "submitted" / "victim" / name / f"{name}.ipynb",
    "victim autograded": root / "autograded" / "victim" / name / f"{name}.ipynb",
    "solution": root / "solutions" / name / f"{name}.ipynb",
    "course root": root / "PWNED-course",
    "repository": repo / "PWNED-repository",
    "library": repo / "gated_lib" / "grading" / "pwned_by_student.py",
    "tmp": pathlib.Path("/tmp") / "PWNED-tmp",
}
for label, path in targets.items():
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            fh.write("pwned")
        print(f"WROTE-IN-SANDBOX {label}")
    except OSError as exc:
        print(f"DENIED {label}: {type(exc).__name__}")
try:
    (root / "gradebook.db").unlink()
except OSError:
    pass
(here / "my_own_scratch_file.txt").write_text("allowed")
print("OWN-FOLDER-OK")
'''


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "setup", ATTACK)
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    assert "OWN-FOLDER-OK" in run.outputs()
    # what the attack wrote landed in the sandbox's throwaway views, never on disk (the test checks
    # the victim's files, the gradebook and the solutions for every submission, see test_adversarial)
    for path in (run.root / "PWNED-course", run.repo / "PWNED-repository",
                 run.repo / "gated_lib" / "grading" / "pwned_by_student.py"):
        assert not path.exists(), f"{path} was written by a submission"
