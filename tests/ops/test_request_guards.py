"""Requests Django itself would turn into a 500 (or parse at any size) are refused with a clear 4xx first."""

from __future__ import annotations

import pytest
from django.test import Client

from registryadmin.handler import usable_charset

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["utf-8", "UTF8", "latin-1", "iso-8859-15", "cp1252", "ascii"])
def test_text_encodings_are_usable(name: str) -> None:
    assert usable_charset(name)


@pytest.mark.parametrize(
    "name",
    [
        "base64",
        "hex",
        "zlib",
        "rot13",
        "bz2",
        "uu",
        "quopri",
        "idna",
        "punycode",
        "utf-16",
        "utf-32",
        "unicode_escape",
        "raw_unicode_escape",
        "nonsense",
        "",
        "a" * 300,
    ],
)
def test_codecs_that_do_not_read_ascii_as_ascii_are_not(name: str) -> None:
    assert not usable_charset(name)


@pytest.mark.parametrize("charset", ["base64", "hex", "zlib", "rot13", "idna", "utf-16", "unicode_escape"])
@pytest.mark.parametrize("path", ["/healthz?x=%ff", "/login/?next=%ff", "/?q=1", "/registry/registry/events?x=1"])
def test_a_charset_that_is_not_a_text_encoding_is_a_400_on_any_url(path: str, charset: str) -> None:
    response = Client().get(path, CONTENT_TYPE=f"text/plain; charset={charset}")
    assert response.status_code == 400
    assert charset.encode() in response.content


def test_a_body_over_the_limit_is_refused_before_parsing(settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = Client().post("/auth/token", "x" * 1001, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " 12"])
def test_a_content_length_that_is_not_a_number_is_a_400(length: str) -> None:
    response = Client().post(
        "/auth/token", "", content_type="text/plain", HTTP_CONTENT_LENGTH=length, CONTENT_LENGTH=length
    )
    assert response.status_code == 400


def test_a_nul_in_the_path_is_a_400() -> None:
    assert Client().get("/teams/a%00b/").status_code == 400
