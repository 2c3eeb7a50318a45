"""The access decision engine (accounts.permissions): plain data in, no database.

Personas: alice leads team web and holds her own admin grant on web/**; bob is
a member of web, which may write to web/**; carol is an outsider; dave's
account is inactive; ada is an administrator; web-ci is team web's robot.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.access.engine import (
    REASON_KINDS,
    ROLE_ACTIONS,
    Ceiling,
    Decision,
    GrantData,
    Subject,
    actions_for_role,
    allowed_actions,
    catalog_allowed,
    decide,
    describe_access,
    explain_missing,
    role_at_most,
)
from accounts.access.patterns import pattern_matches
from accounts.constants import ACTIONS, ROLE_ORDER

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LAST_MONTH = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
NEXT_WEEK = NOW + timedelta(days=7)

NOTHING: frozenset[str] = frozenset()
PULL = frozenset({"pull"})
PULL_PUSH = frozenset({"pull", "push"})
EVERYTHING = frozenset(ACTIONS)

TEAM_WEB_WRITES = GrantData(1, "web/**", "write", team="web")
ALICE_ADMIN = GrantData(2, "web/**", "admin", user="alice")
CAROL_READS_APP = GrantData(3, "web/app", "read", user="carol")

ALICE = Subject("user", "alice", teams=frozenset({"web"}), grants=(TEAM_WEB_WRITES, ALICE_ADMIN))
BOB = Subject("user", "bob", teams=frozenset({"web"}), grants=(TEAM_WEB_WRITES,))
CAROL = Subject("user", "carol")
DAVE = Subject("user", "dave", is_active=False, grants=(GrantData(4, "**", "admin", user="dave"),))
ADA = Subject("user", "ada", is_superuser=True)
ANONYMOUS = Subject("anonymous")
WEB_CI = Subject(
    "robot",
    "web-ci",
    grants=(GrantData(5, "**", "admin", user="web-ci"),),
    ceilings=(Ceiling("web/**", "write"),),
    ceiling_label="team web's grants",
)


def ask(subject: Subject, repository: str = "web/app", *, registry: str = "main", public: bool = False) -> Decision:
    return decide(subject, repository, registry=registry, public=public, now=NOW)


def allowed(
    subject: Subject, repository: str = "web/app", *, registry: str = "main", public: bool = False
) -> frozenset[str]:
    return allowed_actions(subject, repository, registry=registry, public=public, now=NOW)


def with_grants(subject: Subject, *grants: GrantData) -> Subject:
    return dataclasses.replace(subject, grants=subject.grants + grants)


def kinds(decision: Decision) -> list[str]:
    return [reason.kind for reason in decision.reasons]


def texts(decision: Decision) -> list[str]:
    return [reason.text for reason in decision.reasons]


# --- roles ---------------------------------------------------------------------


def test_roles_nest_read_inside_write_inside_admin() -> None:
    assert ROLE_ORDER == ("read", "write", "admin")
    assert actions_for_role("read") == PULL
    assert actions_for_role("write") == PULL_PUSH
    assert actions_for_role("admin") == EVERYTHING
    assert [ROLE_ACTIONS[role] for role in ROLE_ORDER] == [PULL, PULL_PUSH, EVERYTHING]


@pytest.mark.parametrize(
    ("role", "cap", "expected"),
    [("read", "write", True), ("write", "write", True), ("admin", "write", False), ("write", "read", False)],
)
def test_role_at_most_compares_what_roles_allow(role: str, cap: str, expected: bool) -> None:
    assert role_at_most(role, cap) is expected


def test_an_unknown_role_is_an_error_for_the_helpers() -> None:
    with pytest.raises(ValueError, match="unknown role 'owner'"):
        actions_for_role("owner")
    with pytest.raises(ValueError, match="unknown role"):
        role_at_most("read", "owner")


# --- grants --------------------------------------------------------------------


def test_alice_may_do_everything_her_own_admin_grant_gives() -> None:
    assert allowed(ALICE) == EVERYTHING


def test_bob_may_pull_and_push_through_team_web() -> None:
    decision = ask(BOB)
    assert decision.actions == PULL_PUSH
    assert texts(decision) == ["write on web/** through team web grants pull, push"]
    assert decision.reasons[0].kind == "team_grant"
    assert decision.reasons[0].team == "web"
    assert decision.reasons[0].grant_id == 1


def test_a_team_read_grant_is_explained_in_plain_words() -> None:
    bob = Subject("user", "bob", teams=frozenset({"web"}), grants=(GrantData(9, "web/*", "read", team="web"),))
    assert texts(ask(bob)) == ["read on web/* through team web grants pull"]


def test_an_own_grant_is_explained_with_the_holders_name() -> None:
    bob = with_grants(CAROL, GrantData(6, "web/app", "write", user="bob"))
    bob = dataclasses.replace(bob, name="bob")
    decision = ask(bob)
    assert decision.actions == PULL_PUSH
    assert texts(decision) == ["bob's own grant write on web/app grants pull, push"]
    assert kinds(decision) == ["grant"]


def test_carol_gets_nothing_and_is_told_she_holds_no_grant() -> None:
    decision = ask(CAROL)
    assert decision.actions == NOTHING
    assert texts(decision) == ["carol holds no grant matching web/app"]
    assert kinds(decision) == ["no_grant"]


def test_team_grants_only_reach_members_of_the_team() -> None:
    # Even if a caller hands carol team web's grant, she is not in team web.
    assert allowed(with_grants(CAROL, TEAM_WEB_WRITES)) == NOTHING


def test_a_grant_to_someone_else_never_applies() -> None:
    assert allowed(with_grants(CAROL, ALICE_ADMIN)) == NOTHING


def test_a_grant_naming_a_user_does_not_also_reach_a_team() -> None:
    odd = GrantData(8, "web/**", "admin", user="alice", team="web")
    assert allowed(with_grants(BOB, odd)) == PULL_PUSH


def test_grants_add_up_across_own_and_team_grants() -> None:
    assert allowed(with_grants(BOB, GrantData(6, "web/app", "admin", user="bob"))) == EVERYTHING


def test_a_grant_on_another_pattern_does_not_apply() -> None:
    assert allowed(BOB, "ops/db") == NOTHING


def test_an_expired_grant_counts_for_nothing_but_is_explained() -> None:
    alice = Subject("user", "alice", grants=(GrantData(7, "web/**", "admin", user="alice", expires_at=LAST_MONTH),))
    decision = ask(alice)
    assert decision.actions == NOTHING
    assert "grant #7 (admin on web/**) expired 2026-05-01 10:00 UTC" in texts(decision)
    assert "alice holds no usable grant matching web/app" in texts(decision)
    assert kinds(decision) == ["expired", "no_grant"]


def test_a_grant_expiring_this_very_moment_has_expired() -> None:
    assert allowed(Subject("user", "carol", grants=(dataclasses.replace(CAROL_READS_APP, expires_at=NOW),))) == NOTHING


def test_a_grant_expiring_later_still_counts() -> None:
    later = dataclasses.replace(CAROL_READS_APP, expires_at=NEXT_WEEK)
    assert allowed(with_grants(CAROL, later)) == PULL


def test_expiry_times_are_shown_in_utc() -> None:
    berlin = datetime(2026, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    grant = dataclasses.replace(CAROL_READS_APP, expires_at=berlin)
    assert "expired 2026-05-01 12:00 UTC" in texts(ask(with_grants(CAROL, grant)))[0]


def test_a_grant_for_another_registry_does_not_apply_here() -> None:
    mirror_only = GrantData(10, "web/**", "admin", user="bob", registry="mirror")
    decision = ask(with_grants(BOB, mirror_only), registry="main")
    assert decision.actions == PULL_PUSH
    assert "grant #10 (admin on web/**) is for registry mirror, not main" in texts(decision)
    assert "registry_mismatch" in kinds(decision)


def test_a_grant_for_this_registry_applies_here() -> None:
    mirror_only = GrantData(10, "web/**", "admin", user="bob", registry="mirror")
    assert allowed(with_grants(BOB, mirror_only), registry="mirror") == EVERYTHING


def test_a_grant_without_a_registry_applies_to_every_registry() -> None:
    assert allowed(BOB, registry="main") == allowed(BOB, registry="mirror") == PULL_PUSH


def test_an_unknown_role_grants_nothing() -> None:
    assert allowed(with_grants(CAROL, GrantData(11, "web/app", "owner", user="carol"))) == NOTHING


def test_a_corrupt_stored_pattern_grants_nothing_instead_of_crashing() -> None:
    assert allowed(with_grants(CAROL, GrantData(12, "web/a**", "admin", user="carol"))) == NOTHING


def test_an_invalid_repository_name_is_refused_even_to_an_administrator() -> None:
    decision = ask(ADA, "Web/App")
    assert decision.actions == NOTHING
    assert texts(decision) == ["'Web/App' is not a valid repository name"]


# --- public, anonymous, inactive, superuser --------------------------------------


def test_a_public_repository_lets_carol_pull_but_never_push() -> None:
    decision = ask(CAROL, public=True)
    assert decision.actions == PULL
    assert "web/app is public: everyone may pull" in texts(decision)


def test_public_adds_pull_to_what_bob_already_has() -> None:
    assert allowed(BOB, public=True) == PULL_PUSH


def test_anonymous_may_pull_a_public_repository_and_nothing_else() -> None:
    decision = ask(ANONYMOUS, public=True)
    assert decision.actions == PULL
    assert kinds(decision) == ["public", "anonymous"]


def test_anonymous_gets_nothing_on_a_private_repository() -> None:
    decision = ask(ANONYMOUS)
    assert decision.actions == NOTHING
    assert texts(decision) == ["anonymous users may only pull public repositories, and web/app is not public"]


def test_anonymous_ignores_grants_and_administrator_flags() -> None:
    forged = Subject("anonymous", is_superuser=True, grants=(GrantData(13, "**", "admin"),))
    assert allowed(forged, public=True) == PULL
    assert allowed(forged) == NOTHING


def test_an_unknown_kind_of_subject_is_treated_as_anonymous() -> None:
    assert allowed(Subject("service", "x", is_superuser=True), public=True) == PULL


def test_dave_is_inactive_and_gets_nothing_even_on_a_public_repository() -> None:
    decision = ask(DAVE, public=True)
    assert decision.actions == NOTHING
    assert kinds(decision) == ["inactive"]
    assert texts(decision) == ["dave's account is inactive: no access, not even to public repositories"]


def test_an_inactive_administrator_gets_nothing() -> None:
    assert allowed(dataclasses.replace(ADA, is_active=False)) == NOTHING


def test_ada_the_administrator_may_do_everything_everywhere() -> None:
    decision = ask(ADA, "ops/anything/deep")
    assert decision.actions == EVERYTHING
    assert texts(decision) == ["ada is an administrator: pull, push, delete"]


# --- ceilings ------------------------------------------------------------------------


def test_a_read_only_token_of_an_administrator_only_pulls() -> None:
    token = dataclasses.replace(ADA, ceilings=(Ceiling("**", "read"),), ceiling_label="token ci-read (read-only)")
    decision = ask(token)
    assert decision.actions == PULL
    ceiling = next(reason for reason in decision.reasons if reason.kind == "ceiling")
    assert ceiling.action_set == frozenset({"push", "delete"})
    assert ceiling.text == (
        "capped by token ci-read (read-only): only pull allowed on web/app (withheld: push, delete)"
    )


def test_the_web_robot_stays_within_what_team_web_holds() -> None:
    assert allowed(WEB_CI, "web/app") == PULL_PUSH
    decision = ask(WEB_CI, "ops/db")
    assert decision.actions == NOTHING
    assert "capped by team web's grants: nothing allowed on ops/db (withheld: pull, push, delete)" in texts(decision)


def test_empty_ceilings_allow_nothing_not_even_public_pull() -> None:
    assert allowed(dataclasses.replace(BOB, ceilings=()), public=True) == NOTHING


def test_a_ceiling_for_another_registry_does_not_lift_the_cap() -> None:
    token = dataclasses.replace(ALICE, ceilings=(Ceiling("**", "admin", registry="mirror"),))
    assert allowed(token, registry="main") == NOTHING
    assert allowed(token, registry="mirror") == EVERYTHING


def test_ceilings_add_up_like_grants() -> None:
    token = dataclasses.replace(ALICE, ceilings=(Ceiling("web/*", "read"), Ceiling("web/app", "write")))
    assert allowed(token, "web/app") == PULL_PUSH
    assert allowed(token, "web/other") == PULL


def test_a_ceiling_never_grants_anything_by_itself() -> None:
    assert allowed(dataclasses.replace(CAROL, ceilings=(Ceiling("**", "admin"),))) == NOTHING


# --- catalog -------------------------------------------------------------------------


def test_the_catalog_needs_an_explicit_grant_or_an_administrator() -> None:
    assert catalog_allowed(ADA)
    assert catalog_allowed(dataclasses.replace(BOB, catalog=True))
    assert not catalog_allowed(BOB)


def test_nobody_inactive_or_anonymous_lists_the_catalog() -> None:
    assert not catalog_allowed(dataclasses.replace(ADA, is_active=False))
    assert not catalog_allowed(dataclasses.replace(BOB, catalog=True, is_active=False))
    assert not catalog_allowed(Subject("anonymous", catalog=True, is_superuser=True))


# --- explaining ----------------------------------------------------------------------


def test_explain_missing_says_which_role_is_needed_and_what_carol_has() -> None:
    decision = ask(with_grants(CAROL, CAROL_READS_APP))
    assert explain_missing(decision, {"push"}) == "push needs write; carol's own grant read on web/app grants pull"


def test_explain_missing_is_empty_when_everything_wanted_is_allowed() -> None:
    assert explain_missing(ask(BOB), {"pull", "push"}) == ""


def test_explain_missing_for_an_inactive_account_just_says_so() -> None:
    assert explain_missing(ask(DAVE), {"pull"}) == (
        "dave's account is inactive: no access, not even to public repositories"
    )


def test_explain_missing_puts_what_withheld_the_action_first() -> None:
    expired = GrantData(7, "web/**", "admin", user="bob", expires_at=LAST_MONTH)
    text = explain_missing(ask(with_grants(BOB, expired)), {"delete"})
    assert text == (
        "delete needs admin; grant #7 (admin on web/**) expired 2026-05-01 10:00 UTC; "
        "write on web/** through team web grants pull, push"
    )


def test_explain_missing_mentions_the_ceiling_that_took_an_action_away() -> None:
    text = explain_missing(ask(WEB_CI), {"delete"})
    assert text.startswith("delete needs admin; capped by team web's grants: only pull, push allowed on web/app")


def test_explain_missing_names_actions_that_do_not_exist() -> None:
    assert explain_missing(ask(ADA), {"*"}) == "'*' is not an action (use pull, push, delete)"


# --- describing ----------------------------------------------------------------------


def test_ada_sees_one_line_for_everything() -> None:
    assert [entry.text for entry in describe_access(ADA, now=NOW)] == ["** : pull, push, delete (administrator)"]


def test_alice_sees_own_and_team_grants_on_one_pattern_merged() -> None:
    (entry,) = describe_access(ALICE, now=NOW)
    assert entry.text == "web/** : pull, push, delete (own grant, team web)"
    assert entry.actions == ("pull", "push", "delete")
    assert entry.grant_ids == (1, 2)


def test_bob_sees_separate_lines_for_separate_patterns_and_registries() -> None:
    bob = with_grants(BOB, GrantData(6, "web/app", "admin", user="bob", registry="mirror"))
    assert [entry.text for entry in describe_access(bob, now=NOW)] == [
        "web/** : pull, push (team web)",
        "web/app on mirror : pull, push, delete (own grant)",
    ]


def test_describe_access_leaves_out_expired_grants() -> None:
    expired = GrantData(7, "ops/**", "admin", user="bob", expires_at=LAST_MONTH)
    assert [entry.pattern for entry in describe_access(with_grants(BOB, expired), now=NOW)] == ["web/**"]


def test_describe_access_tells_when_the_first_grant_behind_a_line_expires() -> None:
    soon = GrantData(6, "web/**", "admin", user="bob", expires_at=NEXT_WEEK)
    (entry,) = describe_access(with_grants(BOB, soon), now=NOW)
    assert entry.expires_at == NEXT_WEEK


def test_carol_dave_and_anonymous_see_no_lines() -> None:
    assert describe_access(CAROL, now=NOW) == []
    assert describe_access(DAVE, now=NOW) == []
    assert describe_access(ANONYMOUS, now=NOW) == []


def test_a_read_only_token_is_described_as_read_only() -> None:
    token = dataclasses.replace(ALICE, ceilings=(Ceiling("**", "read"),), ceiling_label="token ci-read (read-only)")
    (entry,) = describe_access(token, now=NOW)
    assert entry.text == "web/** : pull (own grant, team web, limited by token ci-read (read-only))"


def test_the_web_robot_is_described_within_its_teams_grants() -> None:
    # web-ci holds admin on **, but its team only has write on web/**.
    assert [entry.text for entry in describe_access(WEB_CI, now=NOW)] == [
        "web/** : pull, push (own grant, limited by team web's grants)"
    ]


def test_a_token_limited_to_one_registry_is_described_for_that_registry_only() -> None:
    token = dataclasses.replace(BOB, ceilings=(Ceiling("**", "read", registry="mirror"),), ceiling_label="token m")
    assert [entry.text for entry in describe_access(token, now=NOW)] == [
        "web/** on mirror : pull (team web, limited by token m)"
    ]


def test_an_administrators_token_is_described_by_its_ceilings() -> None:
    token = dataclasses.replace(ADA, ceilings=(Ceiling("web/*", "write"),), ceiling_label="token deploy")
    assert [entry.text for entry in describe_access(token, now=NOW)] == [
        "web/* : pull, push (administrator, limited by token deploy)"
    ]


# --- properties ----------------------------------------------------------------------

PATTERNS = ["web/app", "web/*", "web/**", "**", "web/app-*", "ops/*", "*/app", "web/a**"]
REPOSITORIES = ["web/app", "web/app-1", "web/a/b", "ops/db", "ops/app", "other"]
PEOPLE = ["alice", "bob", "carol", "web-ci"]
TEAMS = ["web", "ops"]
REGISTRY_CHOICES = ["main", "mirror"]
ROLES = [*ROLE_ORDER, "owner"]

grants_strategy = st.builds(
    GrantData,
    id=st.integers(1, 999),
    pattern=st.sampled_from(PATTERNS),
    role=st.sampled_from(ROLES),
    registry=st.sampled_from([None, *REGISTRY_CHOICES]),
    expires_at=st.sampled_from([None, LAST_MONTH, NOW, NEXT_WEEK]),
    user=st.sampled_from([None, *PEOPLE]),
    team=st.sampled_from([None, *TEAMS]),
)
ceilings_strategy = st.none() | st.lists(
    st.builds(
        Ceiling,
        pattern=st.sampled_from(PATTERNS),
        role=st.sampled_from(ROLES),
        registry=st.sampled_from([None, *REGISTRY_CHOICES]),
    ),
    max_size=3,
).map(tuple)
subjects = st.builds(
    Subject,
    kind=st.sampled_from(["user", "robot", "anonymous"]),
    name=st.sampled_from(PEOPLE),
    is_active=st.booleans(),
    is_superuser=st.booleans(),
    catalog=st.booleans(),
    teams=st.frozensets(st.sampled_from(TEAMS)),
    grants=st.lists(grants_strategy, max_size=5).map(tuple),
    ceilings=ceilings_strategy,
    ceiling_label=st.sampled_from(["", "token ci (read-only)"]),
)
questions = st.fixed_dictionaries(
    {
        "repository": st.sampled_from(REPOSITORIES),
        "registry": st.sampled_from(REGISTRY_CHOICES),
        "public": st.booleans(),
    }
)
Question = dict[str, Any]
NESTED_ANSWERS = {NOTHING, PULL, PULL_PUSH, EVERYTHING}


def answer(subject: Subject, question: Question) -> frozenset[str]:
    return allowed_actions(subject, **question, now=NOW)


@given(subjects, questions)
def test_allowed_actions_equals_the_actions_of_decide(subject: Subject, question: Question) -> None:
    assert answer(subject, question) == decide(subject, **question, now=NOW).actions


@given(subjects, questions)
def test_every_answer_is_nothing_pull_pull_push_or_everything(subject: Subject, question: Question) -> None:
    assert answer(subject, question) in NESTED_ANSWERS


@given(subjects, questions)
def test_every_decision_has_reasons_of_known_kinds(subject: Subject, question: Question) -> None:
    decision = decide(subject, **question, now=NOW)
    assert decision.reasons
    assert {reason.kind for reason in decision.reasons} <= set(REASON_KINDS)
    granted = set().union(*(reason.action_set for reason in decision.reasons if reason.kind in _GRANTING))
    assert decision.actions <= granted


_GRANTING = {"superuser", "grant", "team_grant", "public"}


@given(subjects, questions)
def test_explain_missing_is_empty_exactly_when_nothing_is_missing(subject: Subject, question: Question) -> None:
    decision = decide(subject, **question, now=NOW)
    for action in ACTIONS:
        assert (explain_missing(decision, {action}) == "") == (action in decision.actions)


@given(subjects, questions)
def test_expired_grants_count_for_nothing(subject: Subject, question: Question) -> None:
    current = tuple(g for g in subject.grants if g.expires_at is None or g.expires_at > NOW)
    assert answer(subject, question) == answer(dataclasses.replace(subject, grants=current), question)


@given(subjects, questions)
def test_grants_for_another_registry_count_for_nothing(subject: Subject, question: Question) -> None:
    here = tuple(g for g in subject.grants if g.registry in (None, question["registry"]))
    assert answer(subject, question) == answer(dataclasses.replace(subject, grants=here), question)


@given(subjects, questions)
def test_an_inactive_subject_gets_nothing(subject: Subject, question: Question) -> None:
    assert answer(dataclasses.replace(subject, is_active=False), question) == NOTHING


@given(subjects, questions)
def test_anonymous_never_gets_more_than_pull(subject: Subject, question: Question) -> None:
    assert answer(dataclasses.replace(subject, kind="anonymous"), question) <= PULL


@given(subjects, questions)
def test_public_only_ever_adds_pull(subject: Subject, question: Question) -> None:
    public = answer(subject, {**question, "public": True})
    private = answer(subject, {**question, "public": False})
    assert private <= public
    assert public - private <= PULL


@given(subjects, questions)
def test_public_gives_every_active_uncapped_subject_pull(subject: Subject, question: Question) -> None:
    subject = dataclasses.replace(subject, is_active=True, ceilings=None)
    assert "pull" in answer(subject, {**question, "public": True})


@given(subjects, questions)
def test_an_active_uncapped_administrator_gets_everything(subject: Subject, question: Question) -> None:
    subject = dataclasses.replace(subject, kind="user", is_active=True, is_superuser=True, ceilings=None)
    assert answer(subject, question) == EVERYTHING


@given(subjects, grants_strategy, questions)
def test_adding_a_grant_never_removes_actions(subject: Subject, grant: GrantData, question: Question) -> None:
    assert answer(subject, question) <= answer(with_grants(subject, grant), question)


@given(subjects, questions)
def test_leaving_every_team_never_adds_actions(subject: Subject, question: Question) -> None:
    assert answer(dataclasses.replace(subject, teams=frozenset()), question) <= answer(subject, question)


@given(subjects, questions)
def test_ceilings_only_ever_take_actions_away(subject: Subject, question: Question) -> None:
    assert answer(subject, question) <= answer(dataclasses.replace(subject, ceilings=None), question)


@given(subjects, questions)
def test_no_action_escapes_the_ceilings_matching_the_repository(subject: Subject, question: Question) -> None:
    if subject.ceilings is None:
        return
    cap: set[str] = set()
    for ceiling in subject.ceilings:
        if ceiling.registry in (None, question["registry"]) and _matches(ceiling.pattern, question["repository"]):
            cap |= ROLE_ACTIONS.get(ceiling.role, NOTHING)
    assert answer(subject, question) <= cap


def _matches(pattern: str, repository: str) -> bool:
    return pattern != "web/a**" and pattern_matches(pattern, repository)


@given(subjects)
def test_the_access_page_never_overstates_what_the_engine_allows(subject: Subject) -> None:
    for entry in describe_access(subject, now=NOW):
        for repository in REPOSITORIES:
            if not pattern_matches(entry.pattern, repository):
                continue
            registry = entry.registry or "main"
            engine = allowed_actions(subject, repository, registry=registry, public=False, now=NOW)
            assert set(entry.actions) <= engine
