"""User-facing errors: one clear line, exit code 2, no traceback unless --debug."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (file, field, argument). The CLI prints it on one line and exits 2.

    The message names what is at fault (file, line, field or argument) and what would fix it.
    """

    exit_code = 2


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the last good checkpoint is kept. The CLI exits 1."""

    exit_code = 1
