"""Bounded fuzzing of what strangers and admins can send: the token endpoint, the intake, policies, list filters.

Every test asks one thing of the code: whatever arrives, the answer is a status from an expected set,
never a 500 (the test client re-raises the exception behind a 500, so a failure shows its traceback).
Examples run inside a savepoint that is rolled back, so one example's records and holds do not steer
the next. ``HYPOTHESIS_FUZZ_EXAMPLES`` raises the example count for a longer local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")
EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures build a world the examples only read
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
FEW = settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))  # for examples that cost a big body each

# Codecs Django would believe in Content-Type that are not text encodings.
NON_TEXT_CHARSETS = ("base64", "hex", "zlib", "rot13")
CHARSETS = (
    *NON_TEXT_CHARSETS,
    "bz2",
    "uu",
    "quopri",
    "utf-8",
    "UTF-8",
    "latin-1",
    "utf-16",
    "utf-32",
    "cp500",  # EBCDIC: a text encoding, but not one that reads ASCII as ASCII
    "idna",  # its decoder refuses errors="replace": refused like the binary codecs
    "punycode",
    "undefined",
    "unicode_escape",
    "no-such-charset",
    "",
    '"utf-8"',
)


def mostly(good: st.SearchStrategy[T], bad: st.SearchStrategy[T], odds: int = 4) -> st.SearchStrategy[T]:
    """``good`` about ``odds`` times in ``odds + 1``: junk everywhere would stop every example at the first check."""
    # one_of() would merge identical branches; a sampled flag keeps the odds.
    return st.sampled_from([True] * odds + [False]).flatmap(lambda use_good: good if use_good else bad)


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run one example in a savepoint and undo everything it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# Text that a URL-encoded query or form can carry (lone surrogates cannot be encoded).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# What a WSGI server hands over as a header value: latin-1 characters.
header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=60)
tricky_values = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "%00",
        "x" * 5000,
        "9" * 40,
        "-1",
        "0",
        "1e400",
        "NaN",
        "true",
        "None",
        "2026-01-01",
        "2026-02-30",
        "2026-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01",
        "::1",
        "10.0.0.0/8",
        "300.1.1.1",
        "fe80::1%eth0",
        "web/app",
        "web/**",
        "web/*",
        "**",
        "robot$web+ci",
        "repository:web/app:pull",
        "../../etc/passwd",
        "' OR 1=1 --",
        "\u202e\u200b",
        "\U0001f4a5",
        "~",
        "2026-01-01T00:00:00.000000Z~99999999999999999999999",
    ]
)
query_value = st.one_of(any_text, tricky_values)
charset = st.one_of(st.sampled_from(CHARSETS), st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=12))
MEDIA_KINDS = (
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "",
)
content_type = st.one_of(
    st.sampled_from(MEDIA_KINDS),
    st.builds(lambda kind, name: f"{kind}; charset={name}", st.sampled_from(MEDIA_KINDS), charset),
    header_text,
)
