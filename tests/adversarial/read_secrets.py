"""Read what a student must never see and print it (outputs reach the student as feedback): the
solutions, the gradebook (it stores the hidden tests), other kernels' connection files, the grader's
environment; and try the network."""

from tests.adversarial._nb import (
    PART_A_TESTS,
    add_code_after,
    part_a_correct,
    solution_code,
)

DESCRIPTION = "read solutions/, the gradebook, the environment; use the network"
ZERO = ()

ATTACK = '''
import glob, os, pathlib, socket, sqlite3, gated_lib
here = pathlib.Path.cwd()
root = here.parents[2]
repo = pathlib.Path(gated_lib.__file__).resolve().parents[1]
for pattern in [str(root / "solutions" / "**" / "*.ipynb"), str(repo / "solutions" / "**" / "*.ipynb"),
                str(root / "source" / "**" / "*.ipynb"), os.path.expanduser("~/.local/share/jupyter/runtime/*.json"),
                "/root/.local/share/jupyter/runtime/*.json", "/tmp/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            print("READ", path, open(path).read()[:20000])
        except OSError as exc:
            print("DENIED", path, type(exc).__name__)
try:
    db = sqlite3.connect(f"file:{root / 'gradebook.db'}?mode=ro", uri=True)
    for (src,) in db.execute("select source from source_cell"):
        print("GRADEBOOK", src)
except Exception as exc:
    print("GRADEBOOK DENIED", type(exc).__name__)
print("ENV", dict(os.environ))
for host, port in [("pypi.org", 443), ("127.0.0.1", 22), ("8.8.8.8", 53)]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("NETWORK OPEN", host, port)
    except OSError as exc:
        print("NETWORK BLOCKED", host, port, type(exc).__name__)
'''


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "setup", ATTACK)
    return _make_late(nb)


def verify(run):
    from gated_lib import course

    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    text = run.outputs()
    secrets = course.secret_lines(run.solution)
    hidden = {line for line in secrets if line in run.hidden_test_text()}
    own = {line.strip() for line in solution_code(run.solution, "lstm_cell_forward").splitlines()}
    others = secrets - own                    # Part A is the learner's own code: printing it leaks nothing
    leaks = course.find_leaks(text, hidden | others)
    assert hidden and not leaks, f"hidden tests, solutions or mark scheme in the outputs: {leaks[:3]}"
    assert "HISTORY" in text and "OWN NOTEBOOK" in text        # the late cell did run
    assert run.canary not in text, "the grader's environment reached the submission"
    opened = [line for line in text.splitlines() if line.startswith("NETWORK OPEN")]
    assert not opened or not run.bwrap, f"the sandbox has network: {opened}"
    assert "NETWORK BLOCKED 127.0.0.1" in text or not run.bwrap


LATE = '''
import linecache, pathlib, sys
print("HISTORY", In)
print("LINECACHE", ["".join(v[2]) for v in linecache.cache.values() if isinstance(v, tuple) and len(v) > 2])
for p in pathlib.Path.cwd().glob("*.ipynb"):
    try:
        print("OWN NOTEBOOK", p.read_text())
    except OSError as exc:
        print("OWN NOTEBOOK DENIED", type(exc).__name__)
'''


def _make_late(nb):
    from tests.adversarial._nb import add_code_after

    add_code_after(nb, "written_forget_gate", LATE)     # after every test cell has run
    return nb
