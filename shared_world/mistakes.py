"""Host mistakes: what the host asked for cannot be done, as one sentence and an exit code.

Shared by the commands (runner.py, prerender.py); it imports nothing heavy, so a command's
argument parser can use it without loading Discord.
"""

from __future__ import annotations

import sys


class HostMistake(Exception):
    """Something the host can fix, as one sentence and the process's exit code."""

    def __init__(self, sentence: str, code: int) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.code = code


def say(sentence: str) -> None:
    """One sentence for the host, on stderr."""
    print(sentence, file=sys.stderr, flush=True)
