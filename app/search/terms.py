"""User text as search words: what reaches FTS5 or ``to_tsquery`` is built, never passed.

Both query languages give meaning to characters a user types without meaning any
(``"``, ``*``, ``:``, ``&``, ``(``, ``NEAR``, ``AND``...); an unbalanced one is a syntax
error. So the text is cut into runs of letters and digits, each run is quoted as a plain
word, and the last is made a prefix: "hel wor" finds "hello world".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import BadUserInput

MAX_QUERY_CHARS = 500
MAX_WORDS = 16
# Letters and digits, as both tokenizers (unicode61, PostgreSQL's default parser) split.
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Terms:
    words: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.words)

    def fts5(self) -> str:
        """``"hello" "wor"*``: every word a quoted string (FTS5 AND), the last a prefix."""
        quoted = [f'"{word}"' for word in self.words]
        return " ".join(quoted) + "*"

    def tsquery(self) -> str:
        """``'hello' & 'wor':*``: every word a quoted lexeme, the last a prefix."""
        quoted = [f"'{word}'" for word in self.words]
        return " & ".join(quoted) + ":*"


def parse(text: str, path: str = "query") -> Terms:
    """The words of ``text``; BAD_USER_INPUT only when it is too long to be a search."""
    if len(text) > MAX_QUERY_CHARS:
        raise BadUserInput.field(path, f"must be at most {MAX_QUERY_CHARS} characters")
    words = _WORD.findall(text)
    if len(words) > MAX_WORDS:
        raise BadUserInput.field(path, f"must have at most {MAX_WORDS} words")
    return Terms(tuple(words))
