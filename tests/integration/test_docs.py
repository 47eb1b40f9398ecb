"""The documentation runs: every Python how-to example is executed here (the JavaScript
one with the JavaScript suite, test_mock_from_javascript.py; the README's browser
example with the browser tests), and no page points at a file not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.pytest_plugin import MOCK_API_KEY
from tests.docs_examples import DOCS, PROJECT_INI, ROOT, example_files, pages
from tests.processes import clean_env, free_port, running

HOW_TO = DOCS / "how-to"


def test_every_python_example_passes_even_against_an_external_proxy(
    pytester: pytest.Pytester,
) -> None:
    """All the Python examples, in one run against a proxy started as a user would (the
    own-proxy how-to's setup: its claim is that the tests do not change)."""
    pytester.makeini(PROJECT_INI)
    readme = example_files(ROOT / "README.md")
    files = {
        **example_files(HOW_TO / "script-a-function-call.md"),
        **example_files(HOW_TO / "kill-the-upstream-mid-answer.md"),
        "test_weather.py": readme["test_weather.py"],
        **example_files(HOW_TO / "test-your-own-proxy.md"),
        **example_files(HOW_TO / "replay-a-cassette.md"),  # the recorder, then the replay
        **example_files(HOW_TO / "check-the-words-that-were-heard.md"),
    }
    for name, code in files.items():
        (pytester.path / name).write_text(code)
    mock_port = free_port()
    env = clean_env(
        OPENAI_API_KEY=MOCK_API_KEY,
        OPENAI_REALTIME_URL=f"ws://127.0.0.1:{mock_port}/v1/realtime",
    )
    with running(["-m", "proxy", "--port", "0"], env, r"listening on ws://") as (_, lines):
        your_proxy = re.search(r"ws://\S+", lines[-1])
        assert your_proxy is not None, lines
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "-v",
            "--mock-port",
            str(mock_port),
            "--proxy-url",
            your_proxy.group(0),
            *files,  # named, so record_weather.py runs (CI would not collect it)
        )
    result.assert_outcomes(passed=10)
    result.stdout.re_match_lines(
        [r"record_weather.py::\S+ PASSED", r"test_weather_replay.py::\S+ PASSED"]
    )
    assert "sunny" in (pytester.path / "cassettes" / "weather.jsonl").read_text()


# ------------------------------------------------------------------ links

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_REPO_PATH = re.compile(r"`((?:harness|proxy|tests|docs|scripts|benchmarks)/[\w./-]*[\w/])`")


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_points_only_at_files_in_the_repository(page: Path) -> None:
    text = page.read_text()
    missing = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            missing.append(target)
    for path in _REPO_PATH.findall(text):
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} points at what is not there: {missing}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# ------------------------------------------------------------------ named files

#: Files of other repositories that a page or docstring may cite by name, each with the
#: repository it lives in: the citing file must name that repository too.
_ELSEWHERE = {"PROTOCOL-AND-MESSAGE-ORDERING.md": "Signal-Meaning/dg_react_agent"}
_MD_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.md)\b")
#: A web address, with the text of a Markdown link to it.
_WEB_ADDRESS = re.compile(r"(?:\[[^\]]*\]\()?https?://[^\s)]+\)?")
#: A contract named but not in the repository (the team's, once), with or without `.md`.
_OUTSIDE_CONTRACT = re.compile(r"\bPROTOCOL\b(?!-)")
_FOLDERS = ("docs", "deploy", "proxy", "harness", "tests", "benchmarks", "scripts")


def _sources() -> list[Path]:
    """Every page, and every Python file whose docstrings and comments a reader follows."""
    code = [path for folder in _FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    this_file = Path(__file__)  # its own check's examples name missing files on purpose
    return [*pages(), ROOT / "conftest.py", *(path for path in code if path != this_file)]


def _repository_files() -> list[str]:
    """The repository's pages, as paths from its root (not the virtualenv's)."""
    found = [*ROOT.glob("*.md"), *(p for folder in _FOLDERS for p in (ROOT / folder).rglob("*.md"))]
    return [str(path.relative_to(ROOT)) for path in found]


def files_named_but_missing(source: Path, ours: list[str]) -> list[str]:
    """The `*.md` names in a file that are no file of this repository (`ours`, paths from
    its root; a name may be a path's tail: `security.md`, `how-to/replay-a-cassette.md`),
    nor another repository's file cited with that repository."""
    text = source.read_text()
    missing = []
    for name in _MD_NAME.findall(_WEB_ADDRESS.sub("", text)):
        if (source.parent / name).exists():
            continue  # a relative link
        if any(path == name or path.endswith("/" + name) for path in ours):
            continue
        repository = _ELSEWHERE.get(Path(name).name)
        if repository is None or repository not in text:
            missing.append(name)
    missing += [m.group(0) for m in _OUTSIDE_CONTRACT.finditer(text)]
    return missing


def test_pages_and_docstrings_name_only_files_in_the_repository() -> None:
    """A page or docstring that names a file (`security.md`, `docs/deploy.md`) names one
    a reader of this repository can open; the contract is in docs/, nowhere else."""
    ours = _repository_files()
    missing = {
        str(source.relative_to(ROOT)): names
        for source in _sources()
        if (names := files_named_but_missing(source, ours))
    }
    assert not missing, f"named but not in the repository: {missing}"


def test_a_name_outside_the_repository_is_found(tmp_path: Path) -> None:
    """The check above can fail: a page naming the team's old contract file, a docstring
    citing a section of it, another repository's file without its repository."""
    page = tmp_path / "page.md"
    page.write_text(
        "See `PROTOCOL.md` §12, `security.md`, [x](https://e.org/a.md), `docs/deploy.md`,\n"
        "`PROTOCOL-AND-MESSAGE-ORDERING.md` and nowhere.md.\n"
    )
    ours = ["docs/deploy.md"]
    assert files_named_but_missing(page, ours) == [
        "PROTOCOL.md",
        "security.md",
        "PROTOCOL-AND-MESSAGE-ORDERING.md",
        "nowhere.md",
        "PROTOCOL",
    ]
    code = tmp_path / "module.py"
    code.write_text('"""As the contract says (PROTOCOL §3a)."""\n')
    assert files_named_but_missing(code, ours) == ["PROTOCOL"]
