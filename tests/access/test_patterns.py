"""Repository names and grant patterns (accounts.patterns): pure, no database.

Personas: alice leads team web and may hand out patterns inside web's grants;
bob is a member of web; carol is an outsider.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import re
import time

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from accounts.access.patterns import (
    MAX_LENGTH,
    InvalidName,
    compile_pattern,
    is_literal,
    is_valid_repository_name,
    pattern_contains,
    pattern_matcher,
    pattern_matches,
    pattern_regex,
    uncovered_example,
    validate_pattern,
    validate_repository_name,
)

# --- strategies ----------------------------------------------------------------

SEPARATORS = (".", "_", "__", "-", "--")


@st.composite
def components(draw: st.DrawFn, letters: str = "ab1", separators: tuple[str, ...] = SEPARATORS) -> str:
    """A valid path component: letter runs joined by valid separators."""
    runs = draw(st.lists(st.text(alphabet=letters, min_size=1, max_size=3), min_size=1, max_size=3))
    joins = draw(st.lists(st.sampled_from(separators), min_size=len(runs) - 1, max_size=len(runs) - 1))
    return "".join(run + join for run, join in itertools.zip_longest(runs, joins, fillvalue=""))


def names(letters: str = "ab1", depth: int = 4) -> st.SearchStrategy[str]:
    return st.lists(components(letters), min_size=1, max_size=depth).map("/".join)


@st.composite
def glob_components(draw: st.DrawFn, chars: str = "ab1.-_") -> str:
    """A pattern component holding at least one single '*' (never '**')."""
    head = draw(st.text(alphabet=chars, max_size=2))
    middles = draw(st.lists(st.text(alphabet=chars, min_size=1, max_size=2), max_size=2))
    tail = draw(st.text(alphabet=chars, max_size=2))
    return "*".join([head, *middles, tail])


def pattern_components(letters: str = "ab1") -> st.SearchStrategy[str]:
    return st.one_of(components(letters), st.just("*"), st.just("**"), glob_components(letters + ".-_"))


def patterns(letters: str = "ab1", depth: int = 4) -> st.SearchStrategy[str]:
    return st.lists(pattern_components(letters), min_size=1, max_size=depth).map("/".join)


def reference_match(pattern: str, name: str) -> bool:
    """The obvious component-by-component matcher the real one must agree with."""
    return _reference(tuple(pattern.split("/")), tuple(name.split("/")))


def _reference(pattern: tuple[str, ...], name: tuple[str, ...]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference(rest, name[taken:]) for taken in range(1, len(name) + 1))
    # fnmatchcase's '*' is exactly ours inside one component ('[' and '?' never occur).
    return bool(name) and fnmatch.fnmatchcase(name[0], head) and _reference(rest, name[1:])


# --- names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["web", "web/app", "web/app-1", "web/a/b", "a.b_c__d---e", "0/1/2", "a" * MAX_LENGTH],
)
def test_valid_repository_names_are_accepted_unchanged(name: str) -> None:
    assert is_valid_repository_name(name)
    assert validate_repository_name(name) == name


def test_uppercase_is_refused_with_a_message_saying_what_to_write() -> None:
    with pytest.raises(InvalidName) as caught:
        validate_repository_name("Web/App")
    assert str(caught.value) == (
        "repository name 'Web/App' is invalid: path components must be lowercase letters, "
        "digits and separators (. _ __ -), e.g. 'web/app'"
    )
    assert caught.value.value == "Web/App"


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("", "it is empty"),
        ("/web/app", "must not start or end with '/'"),
        ("web/app/", "must not start or end with '/'"),
        ("web//app", "empty path component"),
        ("a" * (MAX_LENGTH + 1), "256 characters long; at most 255"),
        ("web/a..b", "separator '..'"),
        ("web/a___b", "separator '___'"),
        ("web/a.-b", "separator '.-'"),
        ("web/-app", "must start and end with a lowercase letter or digit"),
        ("web/app.", "must start and end with a lowercase letter or digit"),
        ("\x00", "lowercase letters, digits and separators"),
        ("web/app:latest", "lowercase letters, digits and separators"),
        ("wéb/app", "lowercase letters, digits and separators"),
        ("web/*", "lowercase letters, digits and separators"),
    ],
)
def test_invalid_repository_names_are_refused_with_the_reason(name: str, complaint: str) -> None:
    assert not is_valid_repository_name(name)
    with pytest.raises(InvalidName, match=re.escape(complaint)):
        validate_repository_name(name)


@pytest.mark.parametrize("junk", [None, 42, b"web/app", ["web/app"]])
def test_values_that_are_not_text_are_not_names(junk: object) -> None:
    assert not is_valid_repository_name(junk)
    with pytest.raises(InvalidName, match="must be text"):
        validate_repository_name(junk)  # type: ignore[arg-type]


def test_invalid_name_is_a_value_error_for_callers_that_catch_those() -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_repository_name("Web")


@given(names(letters="abcxyz0189"))
def test_generated_names_within_the_length_limit_are_valid(name: str) -> None:
    assume(len(name) <= MAX_LENGTH)
    assert validate_repository_name(name) == name


# --- patterns --------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["web/app", "web/*", "web/**", "**", "app-*", "*.tar", "a/**/b", "*/app", "web/-*"])
def test_valid_patterns_are_accepted_unchanged(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        ("a**", "'**' must be a whole path component"),
        ("web/**x", "'**' must be a whole path component"),
        ("***", "'**' must be a whole path component"),
        ("Web/*", "lowercase letters, digits, separators"),
        ("web/?", "lowercase letters, digits, separators"),
        ("web/*/", "must not start or end with '/'"),
        ("/web/*", "must not start or end with '/'"),
        ("web//*", "empty path component"),
        ("", "it is empty"),
        ("a" * 254 + "/*", "256 characters long"),
        ("web/a..b", "separator '..'"),
        ("\x00", "lowercase letters, digits, separators"),
    ],
)
def test_invalid_patterns_are_refused_with_the_reason(pattern: str, complaint: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(complaint)) as caught:
        validate_pattern(pattern)
    assert str(caught.value).startswith(f"pattern {pattern!r} is invalid: ")


@given(names())
def test_every_valid_name_is_a_valid_pattern_matching_itself(name: str) -> None:
    assume(len(name) <= MAX_LENGTH)
    assert validate_pattern(name) == name
    assert is_literal(name)
    assert pattern_matches(name, name)


def test_only_patterns_without_a_star_are_literal() -> None:
    assert is_literal("web/app")
    assert not is_literal("web/*")
    assert not is_literal("**")


# --- matching --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("web/app", "web/app", True),
        ("web/app", "web/app-1", False),
        ("web/*", "web/app", True),
        ("web/*", "webx/app", False),
        ("web/*", "web", False),
        ("app-*", "app-1", True),
        ("app-*", "app", False),
        ("*/app", "web/app", True),
        ("web/**", "web/app", True),
        ("web/**", "web/a/b", True),
        ("web/**", "web", False),
        ("web/**", "webx/app", False),
        ("**", "web", True),
        ("**", "a/b/c/d", True),
        ("a/**/b", "a/x/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/b", False),
        ("**/app", "web/team/app", True),
        ("*.tar", "backup.tar", True),
        ("*.tar", "backupxtar", False),
    ],
)
def test_patterns_match_the_names_they_should(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected


def test_star_does_not_cross_a_slash() -> None:
    assert not pattern_matches("web/*", "web/a/b")


def test_star_inside_a_component_does_not_cross_a_slash_either() -> None:
    assert not pattern_matches("web/app-*", "web/app-1/x")


def test_an_invalid_name_never_matches_even_everything() -> None:
    assert not pattern_matches("**", "Web/App")
    assert not pattern_matches("web/*", "web/")


def test_matching_with_an_invalid_pattern_is_an_error() -> None:
    with pytest.raises(InvalidName):
        pattern_matches("web/a**", "web/app")


@given(patterns(), names())
def test_the_matcher_agrees_with_a_straightforward_reference(pattern: str, name: str) -> None:
    assume(len(pattern) <= MAX_LENGTH and len(name) <= MAX_LENGTH)
    assert pattern_matches(pattern, name) == reference_match(pattern, name)


@given(patterns(letters="a", depth=3), names(letters="a", depth=4))
def test_the_matcher_agrees_with_the_reference_where_matches_are_common(pattern: str, name: str) -> None:
    # One letter and short names make matches frequent, so "True" gets tested too.
    assert pattern_matches(pattern, name) == reference_match(pattern, name)


@given(patterns(), names())
def test_the_compiled_regex_agrees_with_the_matcher(pattern: str, name: str) -> None:
    assume(len(pattern) <= MAX_LENGTH and len(name) <= MAX_LENGTH)
    assert (compile_pattern(pattern).fullmatch(name) is not None) == pattern_matches(pattern, name)


@given(patterns(letters="a", depth=3), names(letters="a", depth=4))
def test_the_regex_source_as_a_database_would_use_it_agrees_too(pattern: str, name: str) -> None:
    # A database applies the source text with a search; the anchors must make it exact.
    assert (re.search(pattern_regex(pattern), name) is not None) == pattern_matches(pattern, name)


# The only constructs pattern_regex may emit: anchors, literals, '\.', '[^/]*',
# '[^/]+' and '(?:/[^/]+)*', all read the same way by Python and PostgreSQL.
_PORTABLE_REGEX = re.compile(r"\^(?:[a-z0-9_/-]|\\\.|\[\^/\][*+]|\(\?:/\[\^/\]\+\)\*)*\$")


@given(patterns())
def test_the_regex_source_only_uses_syntax_postgres_shares(pattern: str) -> None:
    assume(len(pattern) <= MAX_LENGTH)
    assert _PORTABLE_REGEX.fullmatch(pattern_regex(pattern))


@pytest.mark.parametrize(
    ("pattern", "source"),
    [
        ("web/app", "^web/app$"),
        ("web/*", "^web/[^/]*$"),
        ("web/**", "^web/[^/]+(?:/[^/]+)*$"),
        ("a/**/b", "^a/[^/]+(?:/[^/]+)*/b$"),
        ("*.tar", r"^[^/]*\.tar$"),
    ],
)
def test_pattern_regex_writes_the_expected_source(pattern: str, source: str) -> None:
    assert pattern_regex(pattern) == source


def test_compiled_patterns_are_cached() -> None:
    assert compile_pattern("web/*") is compile_pattern("web/*")
    assert pattern_matcher("web/*") is pattern_matcher("web/*")


def test_a_pattern_with_many_stars_cannot_stall_the_matcher() -> None:
    # A backtracking regex would need ages for this near miss.
    pattern = "*a" * 60 + "*b"
    started = time.perf_counter()
    assert not pattern_matches(pattern, "a" * 250)
    assert time.perf_counter() - started < 2


def star_heavy_patterns() -> st.SearchStrategy[str]:
    """Patterns with at least three wildcards: past the regex fast path, onto the automaton."""
    component = st.one_of(glob_components("a-"), st.just("**"), st.just("*a*"))
    return st.lists(component, min_size=3, max_size=5).map("/".join)


@given(star_heavy_patterns(), names(letters="a", depth=6))
def test_the_automaton_for_many_wildcards_agrees_with_the_reference(pattern: str, name: str) -> None:
    matched = pattern_matches(pattern, name)
    event(f"matched: {matched}")
    assert matched == reference_match(pattern, name)


# --- containment -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("web/**", "web/*", True),
        ("web/*", "web/**", False),
        ("**", "web/app", True),
        ("**", "a/**/b", True),
        ("web/app-*", "web/app-1*", True),
        ("web/app-1*", "web/app-*", False),
        ("*/app", "web/app", True),
        ("web/app", "*/app", False),
        ("web/*", "web/*/x", False),
        ("a/**/b", "a/x/**/b", True),
        ("a/**/b", "a/b", False),
        ("web/*", "web/app", True),
        ("web/*", "ops/app", False),
        ("web/**", "web", False),
        ("web/a*", "web/a.*", True),
        ("web/**", "web/**/cache", True),
        ("**/cache", "web/**/cache", True),
        ("web/*/*", "web/**", False),
    ],
)
def test_containment_examples(outer: str, inner: str, expected: bool) -> None:
    assert pattern_contains(outer, inner) is expected


def test_alice_may_hand_out_app_patterns_inside_team_webs_grant() -> None:
    team_web_holds = "web/**"
    assert pattern_contains(team_web_holds, "web/app-*")
    assert not pattern_contains(team_web_holds, "*/app-*")


def test_a_pattern_matching_no_valid_name_lies_inside_everything() -> None:
    # '.x' can never start a component, so 'web/.x*' selects nothing at all.
    assert pattern_contains("ops/db", "web/.x*")


def test_containment_of_an_invalid_pattern_is_an_error() -> None:
    with pytest.raises(InvalidName):
        pattern_contains("web/**", "web/a**")
    with pytest.raises(InvalidName):
        pattern_contains("Web/**", "web/app")


def test_uncovered_example_shows_a_name_that_escapes_the_outer_pattern() -> None:
    example = uncovered_example("web/*", "web/**")
    assert example is not None
    assert pattern_matches("web/**", example)
    assert not pattern_matches("web/*", example)
    assert uncovered_example("web/**", "web/*") is None


def test_containment_of_long_star_heavy_patterns_answers_quickly() -> None:
    outer = "*" + "*".join("abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] for i in range(120))
    inner = "*" + "*".join("abcdefghijklmnopqrstuvwxyz0123456789"[i * 7 % 36] for i in range(120))
    started = time.perf_counter()
    assert not pattern_contains(outer, inner)
    assert pattern_contains("/".join(["**"] * 40), "/".join(["*"] * 60))
    assert time.perf_counter() - started < 5


@given(patterns())
def test_every_pattern_contains_itself(pattern: str) -> None:
    assume(len(pattern) <= MAX_LENGTH)
    assert pattern_contains(pattern, pattern)
    assert uncovered_example(pattern, pattern) is None


@given(patterns())
def test_double_star_contains_every_pattern(pattern: str) -> None:
    assume(len(pattern) <= MAX_LENGTH)
    assert pattern_contains("**", pattern)


@st.composite
def name_matching(draw: st.DrawFn, pattern: str) -> str:
    """A name that ``pattern`` probably matches: wildcards filled with random text."""
    parts = []
    for component in pattern.split("/"):
        if component == "**":
            parts += draw(st.lists(components(), min_size=1, max_size=3))
        else:
            fillers = iter(draw(st.lists(st.text("ab1.-_", max_size=3), min_size=component.count("*"))))
            parts.append("".join(next(fillers) if char == "*" else char for char in component))
    return "/".join(parts)


@st.composite
def widened(draw: st.DrawFn, pattern: str) -> str:
    """``pattern`` with some components loosened: often, but not always, containing it."""
    loosen = st.sampled_from(["keep", "keep", "*", "**", "prefix*"])
    parts = []
    for component in pattern.split("/"):
        how = draw(loosen)
        if how == "keep" or component == "**":
            parts.append(component)
        elif how == "prefix*":
            parts.append(component.replace("*", "")[:1] + "*")
        else:
            parts.append(how)
    return "/".join(parts)


@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.data(), patterns(depth=3))
def test_containment_is_sound_for_names_the_inner_pattern_matches(data: st.DataObject, inner: str) -> None:
    outer = data.draw(st.one_of(patterns(depth=3), widened(inner)), label="outer")
    name = data.draw(name_matching(inner), label="name")
    assume(pattern_matches(inner, name))
    contained = pattern_contains(outer, inner)
    event(f"contained: {contained}")
    if contained:
        assert pattern_matches(outer, name)


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), patterns(letters="a", depth=3))
def test_a_pattern_contains_every_sharper_version_of_itself(data: st.DataObject, outer: str) -> None:
    # Replacing a wildcard by something it matches can only shrink the set of names.
    name = data.draw(name_matching(outer))
    assume(pattern_matches(outer, name))
    assert pattern_contains(outer, name)


@given(st.data(), patterns(depth=3))
def test_when_containment_fails_the_example_proves_it(data: st.DataObject, inner: str) -> None:
    outer = data.draw(st.one_of(patterns(depth=3), widened(inner)), label="outer")
    example = uncovered_example(outer, inner)
    assert (example is None) == pattern_contains(outer, inner)
    if example is not None:
        assert is_valid_repository_name(example)
        assert pattern_matches(inner, example)
        assert not pattern_matches(outer, example)


# Completeness against brute force. Patterns use a few characters, the names
# one more letter (b) that no pattern names, so that "any other letter" is
# represented too. These sizes were checked offline against much larger name
# sets: every counterexample has a shorter one among these names.


@functools.cache
def small_names(alphabet: str) -> tuple[str, ...]:
    """Every valid name of up to three components of up to three characters."""
    words = ("".join(chars) for size in (1, 2, 3) for chars in itertools.product(alphabet, repeat=size))
    valid_components = [word for word in words if is_valid_repository_name(word)]
    return tuple("/".join(parts) for depth in (1, 2, 3) for parts in itertools.product(valid_components, repeat=depth))


def small_patterns(chars: str) -> st.SearchStrategy[str]:
    component = st.text(alphabet=chars + "*", min_size=1, max_size=3).filter(_valid_pattern)
    return st.lists(st.one_of(component, st.just("**")), min_size=1, max_size=2).map("/".join)


def brute_force_contains(outer: str, inner: str, universe: tuple[str, ...]) -> bool:
    inner_regex, outer_regex = compile_pattern(inner), compile_pattern(outer)
    return all(outer_regex.fullmatch(name) for name in universe if inner_regex.fullmatch(name))


def _valid_pattern(pattern: str) -> bool:
    try:
        validate_pattern(pattern)
    except InvalidName:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(small_patterns("a-"), small_patterns("a-"))
def test_containment_matches_brute_force_with_dashes(outer: str, inner: str) -> None:
    contained = pattern_contains(outer, inner)
    event(f"contained: {contained}")
    assert contained == brute_force_contains(outer, inner, small_names("ab-"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(small_patterns("a._"), small_patterns("a._"))
def test_containment_matches_brute_force_with_dots_and_underscores(outer: str, inner: str) -> None:
    contained = pattern_contains(outer, inner)
    event(f"contained: {contained}")
    assert contained == brute_force_contains(outer, inner, small_names("ab._"))
