"""What the side-by-side pages say about themselves, once for the HTML and markdown pages."""

TITLE = "FastAPI and Flask, side by side"
INTRO = (
    "Each concern of the service as the two twins implement it: the FastAPI code on the left, "
    "the Flask code on the right, and under them, folded, the shared core both of them call. "
    "`make compare` takes the code from the source by name (the list is `docs/concerns.py`: "
    "edit that, not this page), and a test fails when this page falls behind the code."
)
COUNTING = "Lines are the non-blank lines of the code shown, comments and decorators included."
READING = (
    "Each block of code is headed by its file and line range, and numbered with the file's own "
    "lines. The shared core under the two columns is folded: open it to read what both twins "
    "call. The links in the table lead to each concern."
)
HTML_PAGE = "docs/side-by-side.html"
MARKDOWN_PAGE = "docs/side-by-side.md"
SCREENSHOT = "docs/screenshots/side-by-side.png"


def lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"
