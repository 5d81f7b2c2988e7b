"""Replace every test cell (visible and hidden) by a print that claims success."""

from tests.adversarial._nb import (
    ALL_TESTS,
    find,
    set_source,
    source,
    with_wrong_answers,
)

DESCRIPTION = "edit the test cells"
ZERO = ALL_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    for gid in ALL_TESTS:
        set_source(nb, gid, 'print("all tests pass")\n')
    return nb


def verify(run):
    # nbgrader put the instructor's test cells back, hidden tests included
    for gid in ALL_TESTS:
        assert source(find(run.notebook, gid)) == source(find(run.solution, gid)), gid
    assert "all tests pass" not in run.outputs()
