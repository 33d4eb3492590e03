"""Every command shown in README.md and docs/*.md still works as written.

Commands are the lines of fenced ```sh, ```bash, ```shell and ```console blocks (in a
console block, the lines after a `$ ` prompt): backslash continuations joined, comments
dropped, leading `VAR=value` assignments stripped, pipelines and lists split into their
commands. Each is checked by its kind:

- `./dev VERB ...`: VERB is an arm of the `case` in `dev`; when that arm runs
  `python -m chaos SUB`, the arguments are parsed as `chaos SUB ...`; when it runs
  pytest, they are checked as pytest's;
- `pgchaos ...`, `chaos ...`, `python -m chaos ...`: parsed by `chaos.cli.build_parser()`;
- `python -m bench.NAME ...`: parsed by the module's `build_parser()` (or, for a module
  without one, the parser its `main` builds);
- `pytest ...`, `python -m pytest ...`: every option appears in `pytest --help` (run once,
  with this project's plugins) and every path argument exists in the repository;
- anything else must be on ALLOWED below, so that a new kind of command fails until
  somebody decides how to check it.

No network, no process but one `pytest --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from chaos.cli import build_parser as chaos_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

#: Fence languages whose lines are commands; console blocks only after a `$ ` prompt.
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})
CONSOLE_LANGUAGES = frozenset({"console", "shell-session"})

#: Commands the test does not check beyond their first words: each entry is a prefix of
#: a command's words, and why it is accepted as written.
ALLOWED: dict[tuple[str, ...], str] = {
    ("pip", "install"): "installs the toolkit; tests/install/test_wheel.py runs it",
    ("pip", "wheel"): "builds the wheel; tests/install/test_wheel.py runs it",
    ("docker", "compose"): "the compose lane; scripts/chaos-compose.sh runs it",
    ("go", "install"): "how ./dev builds Toxiproxy and actionlint",
    ("curl",): "a request to the running service or Toxiproxy",
}

#: Shell words that separate commands in a pipeline or a list.
_OPERATORS = frozenset({"|", "||", "&&", ";", "&"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")


@dataclass(frozen=True, slots=True)
class Command:
    """One command of one documentation file."""

    file: Path
    line: int
    text: str
    words: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    def fail(self, reason: str) -> NoReturn:
        pytest.fail(f"{self.where}: {self.text}\n    {reason}", pytrace=False)


def _strip_comment(line: str) -> str:
    """The line without a shell comment: `#` at the start of a word, outside quotes."""
    quote = ""
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _fenced_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the command lines of the shell blocks of one file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: tuple[str, str, str] | None = None  # (indent, fence, language)
    for number, line in enumerate(lines, start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                info = match["info"].lower()
                fence = (match["indent"], match["fence"], info)
            continue
        indent, marks, language = fence
        if (
            match
            and match["fence"][0] == marks[0]
            and len(match["fence"]) >= len(marks)
            and not match["info"]
        ):
            fence = None
            continue
        text = line[len(indent) :] if line.startswith(indent) else line.lstrip()
        if language in SHELL_LANGUAGES:
            yield number, text
        elif language in CONSOLE_LANGUAGES and text.startswith("$ "):
            yield number, text[2:]
    if fence is not None:
        raise ValueError(f"{path.relative_to(ROOT)}: a ``` block is never closed")


def _logical_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Command lines with their continuations joined and comments dropped."""
    pending: list[str] = []
    start = 0
    for number, text in _fenced_lines(path):
        if not pending:
            start = number
        stripped = text.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = _strip_comment(" ".join(part.strip() for part in pending))
        pending = []
        if joined:
            yield start, joined
    if pending:
        raise ValueError(f"{path.relative_to(ROOT)}:{start}: a continuation never ends")


def _split(text: str) -> list[list[str]]:
    """The simple commands of a line: shell words, split at pipes and list operators."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def extract(paths: Sequence[Path] = DOCS) -> list[Command]:
    """Every command of the documentation, in file and line order."""
    found: list[Command] = []
    for path in paths:
        for number, text in _logical_lines(path):
            for words in _split(text):
                while words and _ASSIGNMENT.match(words[0]):
                    words = words[1:]  # CI=true ./dev test: the command is ./dev test
                if not words or words[0] in ("export", "cd"):
                    continue
                found.append(Command(path, number, text, tuple(words)))
    return found


COMMANDS = extract()


# -- what each kind of command is checked against --------------------------------------


@dataclass(frozen=True, slots=True)
class DevArm:
    """One verb of `dev`: what it runs."""

    verb: str
    chaos_subcommand: str | None  # `python -m chaos SUB "$@"`
    runs_pytest: bool  # `python -m pytest "$@"`


def dev_arms(script: Path = ROOT / "dev") -> tuple[str, dict[str, DevArm]]:
    """The default verb and the arms of the `case "$cmd" in ... esac` of the dev script."""
    text = script.read_text(encoding="utf-8")
    default = re.search(r"^cmd=\$\{1:-([\w-]+)\}", text, re.MULTILINE)
    block = re.search(r'^case "\$cmd" in\n(.*?)^esac', text, re.MULTILINE | re.DOTALL)
    if default is None or block is None:
        raise ValueError('dev: no `cmd=${1:-...}` or no `case "$cmd" in ... esac`')
    arms: dict[str, DevArm] = {}
    verbs: list[str] = []
    body: list[str] = []
    for line in block[1].splitlines():
        start = re.match(r"^\s*([A-Za-z][\w|-]*)\)(.*)$", line)
        if not verbs and start:
            verbs = start[1].split("|")
            line = start[2]
        if not verbs:
            continue  # the `*)` arm: usage
        body.append(line)
        if line.rstrip().endswith(";;"):
            code = "\n".join(body)
            sub = re.search(r"-m chaos ([\w-]+)", code)
            for verb in verbs:
                arms[verb] = DevArm(verb, sub[1] if sub else None, "-m pytest" in code)
            verbs, body = [], []
    return default[1], arms


def parse_with(parser: argparse.ArgumentParser, what: str, args: Sequence[str]) -> str | None:
    """None when the parser accepts the arguments, else its error line."""
    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        try:
            parser.parse_args(list(args))
        except SystemExit as exc:
            lines = [line for line in said.getvalue().splitlines() if "error:" in line]
            return f"{what} would exit {exc.code}: {' '.join(lines) or said.getvalue().strip()}"
    return None


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parser captured")
        self.parser = parser


def bench_parser(module_name: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its `build_parser()`, else the one its `main`
    builds (stopped at its `parse_args`, before it does anything)."""
    module = importlib.import_module(module_name)
    build: Callable[[], argparse.ArgumentParser] | None = getattr(module, "build_parser", None)
    if build is not None:
        return build()
    main: Callable[[list[str]], object] | None = getattr(module, "main", None)
    if main is None:
        raise LookupError(f"{module_name} has neither build_parser() nor main()")

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> NoReturn:
        raise _Captured(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        try:
            main([])
        except _Captured as captured:
            return captured.parser
    raise LookupError(f"{module_name}.main() parsed no arguments")


@dataclass(frozen=True, slots=True)
class PytestOptions:
    """The options `pytest --help` lists, and which of them take a value."""

    flags: frozenset[str]
    valued: frozenset[str]

    @classmethod
    def from_help(cls, text: str) -> PytestOptions:
        flags: set[str] = set()
        valued: set[str] = set()
        for line in text.splitlines():
            spec = re.match(r"^  (-[^\s,].*?)(?:\s{2,}|$)", line)
            if spec is None:
                continue
            for alias in spec[1].split(", "):
                option = re.match(r"(-[^=\s]+)([= ])?", alias)
                if option is not None:
                    (valued if option[2] else flags).add(option[1])
        return cls(frozenset(flags), frozenset(valued))

    def problems(self, args: Sequence[str]) -> list[str]:
        """What in `args` pytest would not take: unknown options, missing paths."""
        found: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--"):
                name, eq, _ = arg.partition("=")
                if name not in self.flags | self.valued:
                    found.append(f"pytest has no option {name} (pytest --help)")
                elif name in self.valued and not eq:
                    i += 1
            elif arg.startswith("-") and len(arg) > 1:
                name = arg[:2]
                if name in self.valued:
                    i += 0 if len(arg) > 2 else 1
                elif all(f"-{c}" in self.flags for c in arg[1:]):
                    pass  # -q, -qx
                else:
                    found.append(f"pytest has no option {arg} (pytest --help)")
            elif not (ROOT / arg.split("::")[0]).exists():
                found.append(f"no path {arg} in the repository")
            i += 1
        return found


@pytest.fixture(scope="session")
def pytest_options() -> PytestOptions:
    """`pytest --help` of this project, with its plugins (the chaos options among them)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return PytestOptions.from_help(done.stdout)


# -- classification ---------------------------------------------------------------------


def kind_of(words: Sequence[str]) -> tuple[str, str, list[str]]:
    """(kind, what, arguments): kind is dev, chaos, bench, pytest or other."""
    program = words[0].removeprefix(".venv/bin/")
    if program == "./dev":
        return "dev", words[1] if len(words) > 1 else "", list(words[2:])
    if program in ("python", "python3") and len(words) > 2 and words[1] == "-m":
        module, rest = words[2], list(words[3:])
        if module == "chaos":
            return "chaos", "python -m chaos", rest
        if module == "pytest":
            return "pytest", "python -m pytest", rest
        if module.startswith("bench."):
            return "bench", module, rest
        return "other", f"python -m {module}", rest
    if program in ("pgchaos", "chaos"):
        return "chaos", program, list(words[1:])
    if program == "pytest":
        return "pytest", program, list(words[1:])
    return "other", program, list(words[1:])


def check(command: Command, options: Callable[[], PytestOptions]) -> None:
    """Fail with the file, line and command when the command would not run as shown."""
    kind, what, args = kind_of(command.words)
    if kind == "dev":
        default, arms = dev_arms()
        verb = what or default
        arm = arms.get(verb)
        if arm is None:
            command.fail(f"./dev has no verb {verb!r}; it handles {', '.join(sorted(arms))}")
        if arm.chaos_subcommand is not None:
            kind, what, args = "chaos", "python -m chaos", [arm.chaos_subcommand, *args]
        elif arm.runs_pytest:
            kind = "pytest"
        else:
            return
    if kind == "chaos":
        said = parse_with(chaos_parser(), what, args)
        if said is not None:
            command.fail(said)
    elif kind == "bench":
        try:
            parser = bench_parser(what)
        except (ImportError, LookupError) as exc:
            command.fail(f"no benchmark {what}: {exc}")
        said = parse_with(parser, f"python -m {what}", args)
        if said is not None:
            command.fail(said)
    elif kind == "pytest":
        problems = options().problems(args)
        if problems:
            command.fail("; ".join(problems))
    elif not any(tuple(command.words[: len(p)]) == p for p in ALLOWED):
        known = ", ".join(" ".join(p) for p in ALLOWED)
        command.fail(
            f"no check for a command like this ({known} are allowed as written): check it "
            "in tests/unit/test_docs_commands.py or add it to ALLOWED"
        )


# -- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where}" for c in COMMANDS])
def test_documented_command(command: Command, request: pytest.FixtureRequest) -> None:
    def options() -> PytestOptions:
        found: PytestOptions = request.getfixturevalue("pytest_options")
        return found

    check(command, options)


def test_commands_are_found() -> None:
    """The extraction finds the README's commands (an empty list would pass anything)."""
    readme = [c for c in COMMANDS if c.file.name == "README.md"]
    kinds = {kind_of(c.words)[0] for c in readme}
    assert {"dev", "chaos", "pytest", "other"} <= kinds, kinds


def test_extraction(tmp_path: Path) -> None:
    """Continuations, comments, prompts, assignments, lists and other fences."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text `./dev nothing`\n"
        "```sh\n"
        "CI=true ./dev test tests/ha   # a comment\n"
        "pgchaos run --service-url http://x#y \\\n"
        "  --scenarios 'my dir/'\n"
        "\n"
        "export X=1\n"
        "pgchaos list | head\n"
        "```\n"
        "```yaml\n"
        "name: x\n"
        "```\n"
        "  ```console\n"
        "  $ pytest -q\n"
        "  output line\n"
        "  ```\n",
        encoding="utf-8",
    )
    got = [(c.line, c.words) for c in extract([doc])]
    assert got == [
        (3, ("./dev", "test", "tests/ha")),
        (4, ("pgchaos", "run", "--service-url", "http://x#y", "--scenarios", "my dir/")),
        (8, ("pgchaos", "list")),
        (8, ("head",)),
        (14, ("pytest", "-q")),
    ]


def test_dev_arms_follow_the_script() -> None:
    default, arms = dev_arms()
    assert default == "test"
    assert arms["run"].chaos_subcommand == "run"
    assert arms["test"].runs_pytest
    assert arms["lint"].chaos_subcommand is None
    assert not arms["lint"].runs_pytest


def test_pytest_options_from_help() -> None:
    options = PytestOptions.from_help(
        "general:\n"
        "  -k EXPRESSION         Only run tests which match\n"
        "                        -k 'not slow' is an example\n"
        "  -x, --exitfirst       Exit instantly\n"
        "  --maxfail=num         Exit after first num failures\n"
        "  --chaos-target=CHAOS_TARGET\n"
        "  -q, --quiet           Decrease verbosity\n"
    )
    assert options.flags == {"-x", "--exitfirst", "-q", "--quiet"}
    assert options.valued == {"-k", "--maxfail", "--chaos-target"}
    assert options.problems(["-k", "x", "-qx", "--chaos-target", "a:B", "tests/unit"]) == []
    assert options.problems(["--nope", "no/such/path"]) == [
        "pytest has no option --nope (pytest --help)",
        "no path no/such/path in the repository",
    ]


def test_unknown_commands_fail() -> None:
    doc_command = Command(ROOT / "README.md", 1, "make all", ("make", "all"))
    with pytest.raises(pytest.fail.Exception, match=r"README\.md:1: make all"):
        check(doc_command, lambda: PytestOptions(frozenset(), frozenset()))
