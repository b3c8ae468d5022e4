"""``make compare``: write the side-by-side pages and the README's map from ``docs/concerns.py``.

``python -m docs.side_by_side`` writes them; ``--check`` writes nothing and exits 1, naming
each file that differs from what it would write (``tests/test_side_by_side.py`` runs the same
comparison). Neither runs while the concern table has problems: a page with a column missing
would look complete and mislead.
"""

import argparse
import ast
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from docs.concerns import CONCERNS, Concern, Ref
from docs.extract import concern_code, definition
from docs.html_page import html_page
from docs.markdown_page import markdown_page
from docs.readme_map import readme_with_map
from docs.wording import HTML_PAGE, MARKDOWN_PAGE

ROOT = Path(__file__).resolve().parent.parent
README = "README.md"
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class ConcernProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("the concern table has problems:\n" + "\n".join(problems))
        self.problems = problems


def problems(concerns: Sequence[Concern], root: Path = ROOT) -> list[str]:
    """Everything that would make a page wrong or incomplete, one sentence each."""
    found: list[str] = []
    for concern in concerns:
        if not concern.fastapi:
            found.append(f"{concern.slug}: no FastAPI side")
        if not concern.flask:
            found.append(f"{concern.slug}: no Flask side")
        if not SLUG.fullmatch(concern.slug):
            found.append(f"{concern.slug!r}: a slug is lowercase words joined by hyphens")
        refs = [*concern.fastapi, *concern.flask, *concern.shared]
        found += [
            f"{concern.slug}: {problem}" for ref in refs if (problem := ref_problem(ref, root))
        ]
    slugs = Counter(concern.slug for concern in concerns)
    found += [
        f"{slug}: {count} concerns have this slug" for slug, count in slugs.items() if count > 1
    ]
    return found


def ref_problem(ref: Ref, root: Path) -> str | None:
    path = root / ref.path
    if not path.is_file():
        return f"{ref.path} does not exist"
    try:
        module = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError as exc:
        return f"{ref.path} does not parse: {exc.msg} (line {exc.lineno})"
    if definition(module, ref.name) is None:
        return f"{ref.path} defines no {ref.name}"
    return None


def outputs(concerns: Sequence[Concern], root: Path = ROOT) -> dict[str, str]:
    """Each generated file's path (from ``root``) and its whole text."""
    if found := problems(concerns, root):
        raise ConcernProblems(found)
    code = [concern_code(concern, root) for concern in concerns]
    readme = (root / README).read_text(encoding="utf-8")
    return {
        HTML_PAGE: html_page(code),
        MARKDOWN_PAGE: markdown_page(code),
        README: readme_with_map(readme, code),
    }


def stale(concerns: Sequence[Concern], root: Path = ROOT) -> list[str]:
    """The generated files whose committed text is not what ``outputs`` would write."""
    return [path for path, text in outputs(concerns, root).items() if not holds(root / path, text)]


def write(concerns: Sequence[Concern], root: Path = ROOT) -> list[str]:
    """Write the files whose text changed; returns their paths."""
    written = []
    for path, text in outputs(concerns, root).items():
        if not holds(root / path, text):
            # newline="\n": the same bytes on every platform, as the check compares them.
            (root / path).write_text(text, encoding="utf-8", newline="\n")
            written.append(path)
    return written


def holds(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.side_by_side", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        files = stale(CONCERNS) if args.check else write(CONCERNS)
    except ConcernProblems as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        for path in files:
            print(f"{path} is stale: run `make compare`", file=sys.stderr)
        return 1 if files else 0
    for path in files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
