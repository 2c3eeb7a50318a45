"""Repository names and the glob patterns that grants use to select them.

Names follow the OCI distribution grammar: path components made of lowercase
letters and digits, joined inside a component by ``.``, ``_``, ``__`` or a run
of ``-``, components joined by ``/``, at most 255 characters in all.

Patterns are names with wildcards:

* ``*`` matches any characters inside one path component
  (``web/*`` matches ``web/app`` but neither ``webx/app`` nor ``web/a/b``);
* ``**`` written as a whole component matches one or more whole components
  (``web/**`` matches ``web/app`` and ``web/a/b`` but not ``web``).

This module is pure Python on purpose: the token endpoint, the forms and the
database filters all need the same answers, so nothing here may depend on
Django. ``pattern_regex`` gives the database the very regular expression that
``compile_pattern`` uses, so both sides agree on what a pattern selects.

Was ``accounts/patterns.py`` before the layout split.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import deque
from collections.abc import Callable, Iterable

__all__ = [
    "MAX_LENGTH",
    "InvalidName",
    "compile_pattern",
    "is_literal",
    "is_valid_repository_name",
    "pattern_contains",
    "pattern_matcher",
    "pattern_matches",
    "pattern_regex",
    "uncovered_example",
    "validate_pattern",
    "validate_repository_name",
]

MAX_LENGTH = 255

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
# Every alternative starts with a different character, so these never backtrack.
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_COMPONENT_RE = re.compile(_COMPONENT)
_NAME_CHARS_RE = re.compile(r"[a-z0-9._-]+")
_PATTERN_CHARS_RE = re.compile(r"[a-z0-9._*-]+")
_SEPARATOR_RUN_RE = re.compile(r"[._-]+")
_SEPARATOR_CHARS = "._-"
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

_NAME_CHARSET_PROBLEM = "path components must be lowercase letters, digits and separators (. _ __ -), e.g. 'web/app'"
_PATTERN_CHARSET_PROBLEM = (
    "path components may only hold lowercase letters, digits, separators (. _ __ -) "
    "and the wildcard *, e.g. 'web/*' or 'web/**'"
)


class InvalidName(ValueError):
    """A repository name or pattern that breaks the grammar; the message says how.

    ``value`` is what was given and ``problem`` the bare explanation, for forms
    that show the value next to the field anyway.
    """

    def __init__(self, value: object, problem: str, *, what: str = "repository name") -> None:
        self.value = value
        self.problem = problem
        super().__init__(f"{what} {value!r} is invalid: {problem}")


# --- names -------------------------------------------------------------------


def is_valid_repository_name(name: object) -> bool:
    """Whether ``name`` is a repository name the registry would accept."""
    return isinstance(name, str) and len(name) <= MAX_LENGTH and _NAME_RE.fullmatch(name) is not None


def validate_repository_name(name: str) -> str:
    """Return ``name`` unchanged, or raise ``InvalidName`` saying what is wrong."""
    if is_valid_repository_name(name):
        return name
    raise InvalidName(name, _name_problem(name) or _NAME_CHARSET_PROBLEM)


def _name_problem(name: object) -> str | None:
    """The first thing wrong with a name, in words a person can act on."""
    if not isinstance(name, str):
        return f"it must be text, not {type(name).__name__}"
    problem = _shape_problem(name, example="web/app")
    if problem:
        return problem
    for component in name.split("/"):
        problem = _component_problem(component)
        if problem:
            return problem
    return None


def _shape_problem(text: str, *, example: str) -> str | None:
    """What is wrong with the overall shape (length, slashes) of a name or pattern."""
    if not text:
        return f"it is empty; give something like {example!r}"
    if len(text) > MAX_LENGTH:
        return f"it is {len(text)} characters long; at most {MAX_LENGTH} are allowed"
    if text.startswith("/") or text.endswith("/"):
        return "it must not start or end with '/'"
    if "//" in text:
        return "it has an empty path component ('//')"
    return None


def _component_problem(component: str) -> str | None:
    """What is wrong with one wildcard-free path component, if anything."""
    if _COMPONENT_RE.fullmatch(component):
        return None
    if not _NAME_CHARS_RE.fullmatch(component):
        return _NAME_CHARSET_PROBLEM
    if component[0] in _SEPARATOR_CHARS or component[-1] in _SEPARATOR_CHARS:
        return f"path component {component!r} must start and end with a lowercase letter or digit"
    # Only the separators are left to blame once the characters and ends are fine.
    bad = next(run for run in _SEPARATOR_RUN_RE.findall(component) if not _is_separator(run))
    return f"path component {component!r} has the separator {bad!r}; use '.', '_', '__' or a run of '-'"


def _is_separator(run: str) -> bool:
    return run in {".", "_", "__"} or set(run) == {"-"}


# --- patterns ----------------------------------------------------------------


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` unchanged, or raise ``InvalidName`` saying what is wrong.

    Every exact repository name is also a valid pattern.
    """
    problem = _pattern_problem(pattern)
    if problem:
        raise InvalidName(pattern, problem, what="pattern")
    return pattern


def _pattern_problem(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return f"it must be text, not {type(pattern).__name__}"
    problem = _shape_problem(pattern, example="web/*")
    if problem:
        return problem
    for component in pattern.split("/"):
        problem = _pattern_component_problem(component)
        if problem:
            return problem
    return None


def _pattern_component_problem(component: str) -> str | None:
    if component == "**":
        return None
    if "**" in component:
        return f"'**' must be a whole path component (as in 'web/**'), not part of {component!r}"
    if not _PATTERN_CHARS_RE.fullmatch(component):
        return _PATTERN_CHARSET_PROBLEM
    if "*" in component:
        return None
    return _component_problem(component)


def is_literal(pattern: str) -> bool:
    """Whether the pattern is an exact name (has no wildcard)."""
    return "*" not in pattern


def pattern_regex(pattern: str) -> str:
    """The anchored regular expression for ``pattern``, as source text.

    It is written in the subset shared by Python's ``re`` and PostgreSQL's
    advanced regular expressions (``^ $``, ``[^/]``, ``(?:...)``, ``+ *``,
    ``\\.``), so ``Model.objects.filter(name__regex=pattern_regex(p))`` selects
    exactly what ``compile_pattern(p)`` matches. Callers in Python should use
    ``fullmatch``: Python's ``$`` also matches before a final newline.
    """
    validate_pattern(pattern)
    return "^" + "/".join(_component_regex(component) for component in pattern.split("/")) + "$"


def _component_regex(component: str) -> str:
    if component == "**":
        # One or more whole components; written without '.' so that no engine
        # lets it swallow a stray '//'.
        return "[^/]+(?:/[^/]+)*"
    return "".join("[^/]*" if char == "*" else _regex_literal(char) for char in component)


def _regex_literal(char: str) -> str:
    # Pattern characters are [a-z0-9._-]; only '.' means something to a regex
    # engine outside brackets, and '\.' reads the same in Python and PostgreSQL.
    return r"\." if char == "." else char


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled, anchored form of ``pattern_regex(pattern)`` (cached)."""
    return re.compile(pattern_regex(pattern))


@functools.lru_cache(maxsize=4096)
def pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """A cached predicate telling whether a *valid* repository name matches.

    The hot path (token requests) calls this once per grant, so it picks the
    cheapest safe strategy: string equality for exact names, the compiled
    regex for patterns with at most two wildcards, and an automaton for the
    rest. On a near miss ('*a*a*a...' against 'aaaa...b') Python's backtracking
    engine needs time that grows like len(name) ** wildcards, and patterns are
    typed by team leads, who must not be able to stall the server.
    """
    validate_pattern(pattern)
    if is_literal(pattern):
        return lambda name: name == pattern
    if pattern.count("*") - pattern.count("**") <= 2:
        regex = compile_pattern(pattern)
        return lambda name: regex.fullmatch(name) is not None
    return _Automaton(pattern).matches


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` is a valid repository name selected by ``pattern``.

    Raises ``InvalidName`` for an invalid pattern; an invalid name simply
    does not match.
    """
    matcher = pattern_matcher(pattern)
    return is_valid_repository_name(name) and matcher(name)


# --- automata ----------------------------------------------------------------
#
# A pattern compiles to a "program": a tuple of tokens, each either one literal
# character (including '/') or one of the wildcard steps below. A state of the
# automaton is a position in the program (how many tokens are done); a set of
# states is what the automaton can be in after reading some text.


class _Wild(enum.Enum):
    STAR = "any run of characters other than '/'"
    ANY_ONE = "exactly one character, '/' included"
    ANY_RUN = "any run of characters, '/' included"


_Token = str | _Wild
_States = frozenset[int]


def _program(pattern: str) -> tuple[_Token, ...]:
    """Tokens for a valid pattern.

    ``**`` becomes "one or more of anything". That is exact for valid names:
    the text between the slashes around ``**`` (or the ends) cannot be empty,
    start or end with '/', or hold '//', so it is one or more whole components.
    """
    tokens: list[_Token] = []
    for index, component in enumerate(pattern.split("/")):
        if index:
            tokens.append("/")
        if component == "**":
            tokens += [_Wild.ANY_ONE, _Wild.ANY_RUN]
        else:
            tokens += [_Wild.STAR if char == "*" else char for char in component]
    return tuple(tokens)


class _Automaton:
    """A nondeterministic automaton for one valid pattern, run on sets of states."""

    def __init__(self, pattern: str) -> None:
        self.program = _program(pattern)
        self.final = len(self.program)
        self.start = self.closure([0])
        # After a trailing '**' has read its first character, every
        # continuation matches; the containment search stops looking there.
        trailing_run = self.program[-1] is _Wild.ANY_RUN
        self.universal = self.final - 1 if trailing_run else None
        self._steps: dict[tuple[_States, str], _States] = {}

    def closure(self, states: Iterable[int]) -> _States:
        """Add the states reachable without reading: runs may match nothing."""
        reached: set[int] = set()
        pending = list(states)
        while pending:
            state = pending.pop()
            if state in reached:
                continue
            reached.add(state)
            if state < self.final and self.program[state] in (_Wild.STAR, _Wild.ANY_RUN):
                pending.append(state + 1)
        return frozenset(reached)

    def step(self, states: _States, char: str) -> _States:
        """The states after reading ``char`` from any of ``states``."""
        following: list[int] = []
        for state in states:
            if state == self.final:
                continue
            token = self.program[state]
            if token is _Wild.ANY_RUN or (token is _Wild.STAR and char != "/"):
                following.append(state)
            elif token is _Wild.ANY_ONE or token == char:
                following.append(state + 1)
        return self.closure(following)

    def cached_step(self, states: _States, char: str) -> _States:
        """``step`` remembered, for searches that revisit the same sets many times."""
        key = (states, char)
        if key not in self._steps:
            self._steps[key] = self.step(states, char)
        return self._steps[key]

    def matches(self, name: str) -> bool:
        """Run over ``name``; time grows with len(name) * len(program), never worse."""
        states = self.start
        for char in name:
            states = self.step(states, char)
            if not states:
                return False
        return self.final in states


# The shape of one valid path component, as a small deterministic automaton:
# state -> {character class -> next state}. Missing entries are dead ends.
# "word" (just read a letter or digit) is the only state a name may end in.
_GRAMMAR: dict[str, dict[str, str]] = {
    "start": {"alnum": "word"},
    "word": {"alnum": "word", ".": "dot", "_": "underscore", "-": "dash", "/": "start"},
    "dot": {"alnum": "word"},
    "underscore": {"alnum": "word", "_": "double_underscore"},
    "double_underscore": {"alnum": "word"},
    "dash": {"alnum": "word", "-": "dash"},
}


def _grammar_step(state: str, char: str) -> str | None:
    return _GRAMMAR[state].get("alnum" if char.isalnum() else char)


def _alphabet(*automata: _Automaton) -> list[str]:
    """The characters worth trying when comparing the patterns of ``automata``.

    '/' and the three separators (the grammar treats each differently), every
    literal of either pattern, and one letter or digit neither pattern names:
    all such unnamed characters behave identically in both patterns and in
    the grammar, so one of them speaks for the rest.
    """
    named = {token for automaton in automata for token in automaton.program if isinstance(token, str)}
    chars = named | set("/" + _SEPARATOR_CHARS)
    spare = next((char for char in _ALNUM if char not in named), None)
    if spare is not None:
        chars.add(spare)
    return sorted(chars)


class _Search:
    """Breadth-first search for a valid name that ``inner`` matches and ``outer`` does not.

    A search state is (one state of inner, the set of states outer can be in,
    the grammar state): inner is followed one path at a time, outer is
    determinised on the fly, and the grammar keeps the text a valid name.
    A state is skipped when an already queued one has the same inner and
    grammar states and a subset of its outer states: whatever text would
    escape outer from the bigger set escapes it from the smaller one too.
    Without that pruning, patterns like '*a*b*c*...' make millions of states.
    """

    def __init__(self, outer: _Automaton, inner: _Automaton) -> None:
        self.outer = outer
        self.inner = inner
        self.alphabet = _alphabet(outer, inner)
        self.queue: deque[tuple[int, _States, str, str]] = deque()
        self.smallest: dict[tuple[int, str], list[_States]] = {}

    def visit(self, inner_state: int, outer_states: _States, grammar_state: str, text: str) -> None:
        key = (inner_state, grammar_state)
        seen = self.smallest.setdefault(key, [])
        if any(earlier <= outer_states for earlier in seen):
            return
        seen.append(outer_states)
        self.queue.append((inner_state, outer_states, grammar_state, text))

    def run(self) -> str | None:
        for inner_state in self.inner.start:
            self.visit(inner_state, self.outer.start, "start", "")
        while self.queue:
            inner_state, outer_states, grammar_state, text = self.queue.popleft()
            escaped = self.outer.final not in outer_states
            if grammar_state == "word" and inner_state == self.inner.final and escaped:
                return text
            if self.outer.universal not in outer_states:
                self.expand(inner_state, outer_states, grammar_state, text)
        return None

    def expand(self, inner_state: int, outer_states: _States, grammar_state: str, text: str) -> None:
        for char in self.alphabet:
            next_grammar = _grammar_step(grammar_state, char)
            if next_grammar is None:
                continue
            next_inner = self.inner.cached_step(frozenset([inner_state]), char)
            if not next_inner:
                continue
            next_outer = self.outer.cached_step(outer_states, char)
            for state in next_inner:
                self.visit(state, next_outer, next_grammar, text + char)


def uncovered_example(outer: str, inner: str) -> str | None:
    """A valid repository name that ``inner`` matches but ``outer`` does not.

    Returns ``None`` when there is none, i.e. when ``inner`` lies inside
    ``outer``; otherwise a short such name, handy for messages like
    "web/** would also cover web/a/b". Raises ``InvalidName`` for an invalid
    pattern. The 255-character limit on names is ignored: that can only turn
    "contained" into "not contained", which errs on the side of granting less.
    """
    outer_automaton = _Automaton(validate_pattern(outer))
    inner_automaton = _Automaton(validate_pattern(inner))
    return _Search(outer_automaton, inner_automaton).run()


def pattern_contains(outer: str, inner: str) -> bool:
    """Whether every valid repository name matched by ``inner`` is matched by ``outer``.

    Exact for this glob language, e.g. ``web/**`` contains ``web/*`` (names
    have no empty components), ``web/app-*`` contains ``web/app-1*`` and
    ``a/**/b`` contains ``a/x/**/b``. Raises ``InvalidName`` for an invalid pattern.
    """
    return outer == validate_pattern(inner) or uncovered_example(outer, inner) is None
