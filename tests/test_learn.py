"""`practicum learn` and the lessons: every lesson runs in its fast mode, so none can rot."""

import pytest

from practicum import learn
from practicum.cli import main
from practicum.errors import UserError

LESSONS = learn.list_lessons()


def test_lessons_are_numbered_and_described():
    assert [lesson.number for lesson in LESSONS] == list(range(1, len(LESSONS) + 1))
    assert len(LESSONS) >= 11
    for lesson in LESSONS:
        assert lesson.title and lesson.summary, f"{lesson.path.name} needs a title line and a paragraph"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.name for lesson in LESSONS])
def test_every_lesson_runs_in_fast_mode(lesson, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a lesson writes outside --out would land here
    assert learn.run_lesson(lesson, ["--fast", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    results = [line for line in out.splitlines() if line.startswith("result:")]
    assert results, f"{lesson.name} printed no result line:\n{out[-2000:]}"


@pytest.mark.parametrize("lesson", ["linear_regression", "mlp_xor_digits", "cnn_digits"])
def test_scratch_lessons_run_on_the_torch_twins(lesson, tmp_path, capsys):
    assert learn.run_lesson(learn.find_lesson(lesson), ["--fast", "--torch", "--out", str(tmp_path)]) == 0
    assert "torch" in capsys.readouterr().out.splitlines()[-1]


def test_cli_lists_the_lessons(capsys):
    assert main(["learn"]) == 0
    out = capsys.readouterr().out
    for lesson in LESSONS:
        assert lesson.name in out and lesson.title in out


def test_cli_runs_a_lesson_by_number(capsys, tmp_path):
    assert main(["learn", "1", "--fast", "--out", str(tmp_path)]) == 0
    assert "recovers the planted weights" in capsys.readouterr().out


def test_unknown_lesson_is_one_line_naming_the_choices(capsys):
    assert main(["learn", "no_such_lesson"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no lesson 'no_such_lesson'") and "linear_regression" in err
    assert "\n" not in err


def test_missing_lessons_folder_says_where_to_point(tmp_path):
    with pytest.raises(UserError, match="--dir PATH or set PRACTICUM_EXAMPLES"):
        learn.list_lessons(tmp_path / "absent")


def test_a_lesson_folder_can_be_chosen(tmp_path, capsys):
    (tmp_path / "01_hello.py").write_text('"""Hello.\n\nPrints a result.\n"""\nprint("result: hi")\n')
    (tmp_path / "notes.py").write_text("")  # not a lesson: no NN_ prefix
    assert [lesson.name for lesson in learn.list_lessons(tmp_path)] == ["hello"]
    assert main(["learn", "hello", "--dir", str(tmp_path)]) == 0
    assert "result: hi" in capsys.readouterr().out
