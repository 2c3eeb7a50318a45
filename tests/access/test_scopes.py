"""Token-request scopes (accounts.access.scopes): the ``type:name:actions`` grammar, pure, no database."""

from __future__ import annotations

import pytest

from accounts.access.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES, Scope, ScopeError, parse_scope, parse_scopes

# --- the three parts -------------------------------------------------------------


def test_it_reads_a_repository_scope_into_type_name_and_actions() -> None:
    assert parse_scope("repository:web/app:pull") == Scope("repository", "web/app", ("pull",))


def test_it_splits_the_type_at_the_first_colon_and_the_actions_at_the_last() -> None:
    # Names are not checked for types other than repository, so the split itself shows here.
    scope = parse_scope("blob:localhost:5000/web/app:pull")
    assert (scope.type, scope.name, scope.actions) == ("blob", "localhost:5000/web/app", ("pull",))


def test_a_repository_name_with_a_host_and_port_is_split_whole_but_refused_by_the_name_grammar() -> None:
    with pytest.raises(ScopeError, match=r"repository name 'localhost:5000/web/app' is not valid"):
        parse_scope("repository:localhost:5000/web/app:pull")


def test_it_splits_comma_separated_actions_in_the_order_asked() -> None:
    assert parse_scope("repository:web/app:push,pull,delete").actions == ("push", "pull", "delete")


def test_repeated_actions_collapse_to_the_first_of_each() -> None:
    assert parse_scope("repository:web/app:pull,push,pull,push").actions == ("pull", "push")


def test_star_is_kept_as_an_action_of_its_own() -> None:
    assert parse_scope("repository:web/app:*").actions == ("*",)


def test_the_catalog_scope_is_a_registry_scope_asking_for_star() -> None:
    assert parse_scope("registry:catalog:*") == Scope("registry", "catalog", ("*",))


def test_a_resource_class_in_parentheses_is_dropped_from_the_type() -> None:
    scope = parse_scope("repository(plugin):web/app:pull")
    assert scope == Scope("repository", "web/app", ("pull",))
    assert str(scope) == "repository:web/app:pull"


def test_a_class_does_not_spare_a_repository_name_the_grammar() -> None:
    with pytest.raises(ScopeError, match="repository name"):
        parse_scope("repository(plugin):Web/App:pull")


def test_an_unknown_type_is_parsed_and_refusing_it_is_left_to_the_caller() -> None:
    # The endpoint answers unknown types with an empty grant, not a 400: the parser must let them through.
    assert parse_scope("blob:Any_Thing:pull") == Scope("blob", "Any_Thing", ("pull",))


def test_unknown_lowercase_actions_are_parsed_too() -> None:
    assert parse_scope("repository:web/app:pull,frob").actions == ("pull", "frob")


def test_a_scope_prints_back_as_it_was_asked_without_repeats() -> None:
    assert str(parse_scope("repository:web/app:pull,push,pull")) == "repository:web/app:pull,push"


# --- what the grammar refuses ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["nonsense", "repository", "repository:web/app", "repository::pull", ":web/app:pull", "repository:"],
    ids=["no-colon", "type-only", "no-actions", "empty-name", "empty-type", "type-and-colon"],
)
def test_it_refuses_a_scope_with_a_missing_part(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


@pytest.mark.parametrize(
    "name",
    [
        "Web/App",
        "web//app",
        "/web/app",
        "web/app/",
        "web..app",
        "web___app",
        "-web",
        "web.-app",
        "web/app_",
        "web/-app",
    ],
)
def test_it_refuses_repository_names_outside_the_oci_grammar(name: str) -> None:
    with pytest.raises(ScopeError, match="repository name"):
        parse_scope(f"repository:{name}:pull")


def test_a_repository_name_may_be_255_characters_but_not_256() -> None:
    name = "/".join(["a" * 63] * 4)  # 4 * 63 + 3 slashes = 255
    assert parse_scope(f"repository:{name}:pull").name == name
    with pytest.raises(ScopeError, match="repository name"):
        parse_scope(f"repository:{name}b:pull")


@pytest.mark.parametrize(
    "actions",
    ["", "pull,", ",pull", "pull,,push", "PULL", "pu-ll", "a" * 17],
    ids=["empty", "trailing-comma", "leading-comma", "empty-between", "uppercase", "punctuation", "too-long"],
)
def test_it_refuses_malformed_actions(actions: str) -> None:
    with pytest.raises(ScopeError, match="action"):
        parse_scope(f"repository:web/app:{actions}")


@pytest.mark.parametrize("scope_type", ["Repository", "repository()", "repository(plugin", "repo-sitory", "(plugin)"])
def test_it_refuses_malformed_types(scope_type: str) -> None:
    with pytest.raises(ScopeError, match="type"):
        parse_scope(f"{scope_type}:web/app:pull")


@pytest.mark.parametrize(
    "text",
    ["repository:web/app:pull\x00", "repository:web/app:pu ll", "repository:web/app:pull\t", "repository:wéb:pull"],
    ids=["nul", "space", "tab", "non-ascii"],
)
def test_it_refuses_anything_but_printable_ascii_without_spaces(text: str) -> None:
    with pytest.raises(ScopeError, match="printable ASCII"):
        parse_scope(text)


def test_it_refuses_a_scope_longer_than_the_limit_before_reading_it() -> None:
    with pytest.raises(ScopeError, match="longer than"):
        parse_scope("registry:" + "x" * MAX_SCOPE_LENGTH + ":*")


# --- several scopes ----------------------------------------------------------------


def test_several_scope_parameters_are_all_read_in_order() -> None:
    assert parse_scopes(["repository:web/app:pull", "registry:catalog:*"]) == [
        Scope("repository", "web/app", ("pull",)),
        Scope("registry", "catalog", ("*",)),
    ]


def test_one_parameter_may_hold_several_space_separated_scopes_as_in_the_oauth2_form() -> None:
    scopes = parse_scopes(["repository:web/app:pull  repository:web/api:push", "registry:catalog:*"])
    assert [str(scope) for scope in scopes] == [
        "repository:web/app:pull",
        "repository:web/api:push",
        "registry:catalog:*",
    ]


def test_no_scope_at_all_is_an_empty_list_as_for_docker_login() -> None:
    assert parse_scopes([]) == []
    assert parse_scopes(["", " "]) == []


def test_a_repeated_scope_is_kept_once_per_time_it_was_asked() -> None:
    assert (
        parse_scopes(["repository:web/app:pull", "repository:web/app:pull"])
        == [Scope("repository", "web/app", ("pull",))] * 2
    )


def test_one_bad_scope_among_several_refuses_them_all() -> None:
    with pytest.raises(ScopeError, match="repository name"):
        parse_scopes(["repository:web/app:pull", "repository:Web/App:pull"])


def test_it_refuses_more_scopes_than_the_limit_in_one_request() -> None:
    allowed = [f"repository:web/app{i}:pull" for i in range(MAX_SCOPES)]
    assert len(parse_scopes(allowed)) == MAX_SCOPES
    with pytest.raises(ScopeError, match=f"more than {MAX_SCOPES}"):
        parse_scopes([" ".join(allowed), "registry:catalog:*"])
