"""Shared fixtures: the repository's paths and the list of assignments.

Everything an nbgrader test writes (gradebooks, submissions, releases) lives under pytest's
tmp_path, never in the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gated_lib import course

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.assignments(REPO)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """A course root in a temp folder with every assignment generated into one gradebook."""
    root = course.make_course_root(tmp_path_factory.mktemp("course"), REPO)
    for name in ASSIGNMENTS:
        course.generate(root, name)
    return root



# `make test` runs pytest-xdist (-n auto). Tests that share an expensive session fixture run in one
# worker, so that it is built once; tests that apt-get install a system package (bubblewrap,
# postgresql) or count the machine's sandbox processes share a worker, so that they never race.
# (xdist's own `--dist loadgroup` marks do not work with pytest 9, which no longer reads the node id
# that xdist rewrites: the groups are applied by the scheduler below, by test module.)
XDIST_GROUPS = {
    "book": ("test_book", "test_book_offline", "test_browser"),                  # built_book
    "course": ("test_pipeline_autograde", "test_pipeline_release"),              # graded_course
    "system": ("test_sandbox", "test_adversarial", "test_autograde_postgres", "test_autograde_dask"),
}
_GROUP_OF = {module: group for group, modules in XDIST_GROUPS.items() for module in modules}


def xdist_scope(nodeid: str) -> str:
    """The unit of work of a test: its group's name, or the test itself (distributed freely)."""
    module = nodeid.split("::", 1)[0].rpartition("/")[2].removesuffix(".py")
    return _GROUP_OF.get(module, nodeid)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") not in ("load", "loadscope", "loadgroup"):
        return None                      # an explicit --dist each / loadfile / worksteal is respected
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """Whole groups go to one worker, the largest first (loadscope's reorder); other tests one by one."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return GroupScheduling(config, log)
