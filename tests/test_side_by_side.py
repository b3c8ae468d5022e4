"""The side-by-side reader (``make compare``): its concern table points at real code, its
committed pages are what it writes now, and its checks can fail."""

from pathlib import Path

import pytest

from docs.concerns import CONCERNS, Concern, Ref
from docs.extract import snippet
from docs.side_by_side import ConcernProblems, outputs, problems, stale

# The concerns the side-by-side issue asks for, by slug.
REQUIRED = {
    "app-factory",
    "settings",
    "database-session",
    "current-user",
    "signup",
    "login",
    "token-form",
    "refresh",
    "error-translation",
    "validation-errors",
    "docs-pages",
    "rate-limiting",
}
VIEWS = '''\
"""Two views and a setting."""

import functools

LIMIT = 3


# Why the view is cached.
@functools.cache
def view() -> int:
    return LIMIT


class Views:
    # Why the method is static.
    @staticmethod
    def other() -> int:
        return 2
'''


@pytest.fixture
def views(tmp_path: Path) -> Path:
    (tmp_path / "views.py").write_text(VIEWS)
    return tmp_path


def test_the_concern_table_has_no_problems() -> None:
    assert problems(CONCERNS) == []


def test_every_required_concern_is_present() -> None:
    assert REQUIRED - {concern.slug for concern in CONCERNS} == set()


def test_the_committed_pages_and_readme_map_are_up_to_date() -> None:
    files = stale(CONCERNS)
    assert files == [], f"{', '.join(files)}: not what the generator writes now; run `make compare`"


def test_a_concern_without_a_flask_side_is_reported(views: Path) -> None:
    concern = Concern("Views", "views", "", fastapi=[Ref("views.py", "view")])
    assert problems([concern], root=views) == ["views: no Flask side"]


def test_a_ref_to_an_undefined_name_is_reported(views: Path) -> None:
    concern = Concern(
        "Views", "views", "", fastapi=[Ref("views.py", "view")], flask=[Ref("views.py", "gone")]
    )
    assert problems([concern], root=views) == ["views: views.py defines no gone"]


def test_a_missing_file_and_a_repeated_slug_are_reported(views: Path) -> None:
    here = Concern(
        "Views", "views", "", fastapi=[Ref("views.py", "view")], flask=[Ref("no.py", "x")]
    )
    assert problems([here, here], root=views) == [
        "views: no.py does not exist",
        "views: no.py does not exist",
        "views: 2 concerns have this slug",
    ]


def test_nothing_is_written_while_there_are_problems(views: Path) -> None:
    concern = Concern("Views", "views", "", fastapi=[Ref("views.py", "view")])
    with pytest.raises(ConcernProblems):
        outputs([concern], root=views)


def test_a_definition_is_shown_with_its_decorators_and_the_comments_above(views: Path) -> None:
    found = snippet(Ref("views.py", "view"), views)
    assert found.location == "views.py:8-11"
    assert found.code.splitlines()[:2] == ["# Why the view is cached.", "@functools.cache"]
    assert found.lines == 4


def test_methods_are_dedented_and_assignments_found(views: Path) -> None:
    method = snippet(Ref("views.py", "Views.other"), views)
    assert method.code.startswith("# Why the method is static.\n@staticmethod\ndef other()")
    assert snippet(Ref("views.py", "LIMIT"), views).code == "LIMIT = 3"
