"""Lessons: the runnable scripts in examples/, one concept each, listed and run by name.

A lesson is `examples/NN_name.py`. Its docstring's first line is its title, the next
paragraph what it shows. It parses its arguments with `lesson_parser(__doc__)`, which gives
every lesson `--fast` (a run of seconds, what CI runs so no lesson can rot) and `--out`
(where its files go), and prints what it shows.

    practicum learn                              # the list
    practicum learn linear_regression            # run one (by name or number)
    practicum learn 7 --fast
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from practicum.errors import UserError

_NAME = re.compile(r"^(\d+)_([a-z0-9_]+)\.py$")


@dataclass(frozen=True)
class Lesson:
    number: int
    name: str
    title: str
    summary: str
    path: Path


def lessons_dir(folder: str | Path | None = None) -> Path:
    """The lessons folder: `folder`, else $PRACTICUM_EXAMPLES, else the checkout's examples/."""
    chosen = folder or os.environ.get("PRACTICUM_EXAMPLES")
    path = Path(chosen) if chosen else Path(__file__).resolve().parents[2] / "examples"
    if not path.is_dir():
        raise UserError(f"no lessons folder at {path}: the lessons are the examples/ folder of the "
                        "practicum source checkout; pass --dir PATH or set PRACTICUM_EXAMPLES")
    return path


def list_lessons(folder: str | Path | None = None) -> list[Lesson]:
    """Every lesson in the folder, by number; read from the files, nothing is run."""
    lessons = []
    for path in sorted(lessons_dir(folder).glob("*.py")):
        match = _NAME.match(path.name)
        if not match:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
        title, _, rest = doc.partition("\n")
        summary = " ".join(rest.strip().split("\n\n")[0].split())
        lessons.append(Lesson(int(match[1]), match[2], title.strip().rstrip("."), summary, path))
    return sorted(lessons, key=lambda lesson: lesson.number)


def find_lesson(key: str, folder: str | Path | None = None) -> Lesson:
    """A lesson by name (`linear_regression`), number (`1`, `01`) or file name."""
    lessons = list_lessons(folder)
    key = key.removesuffix(".py")
    for lesson in lessons:
        if key in (lesson.name, lesson.path.stem) or (key.isdigit() and int(key) == lesson.number):
            return lesson
    names = ", ".join(lesson.name for lesson in lessons)
    raise UserError(f"no lesson {key!r}: choose one of {names} (`practicum learn` lists them)")


def run_lesson(lesson: Lesson, args: list[str] | None = None) -> int:
    """Run a lesson's script as __main__ in this process with `args` as its command line."""
    saved = sys.argv
    sys.argv = [str(lesson.path), *(args or [])]
    try:
        runpy.run_path(str(lesson.path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def lesson_parser(doc: str | None, twins: bool = False) -> argparse.ArgumentParser:
    """The argument parser every lesson starts from: --fast and --out (and, with `twins`,
    --torch: run the scratch lesson on the PyTorch twins; `scratch_library` picks them)."""
    title = (doc or "").strip().split("\n")[0]
    name = Path(sys.argv[0]).stem.split("_", 1)[-1] if sys.argv and sys.argv[0] else "lesson"
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--fast", action="store_true",
                        help="a run of seconds on less data (what CI runs); the figures are then rough")
    parser.add_argument("--out", type=Path, default=Path("runs") / "lessons" / name,
                        help="folder for the lesson's files (default runs/lessons/NAME)")
    if twins:
        parser.add_argument("--torch", action="store_true",
                            help="run the same code on the PyTorch twins (practicum.scratch.twins)")
    return parser


def scratch_library(args: argparse.Namespace) -> ModuleType:
    """practicum.scratch, or its PyTorch twins when the lesson was run with --torch."""
    if getattr(args, "torch", False):
        from practicum.scratch import twins

        return twins
    from practicum import scratch

    return scratch
