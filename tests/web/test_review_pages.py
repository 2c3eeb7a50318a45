"""The access review pages, per persona: the list, starting one, the checklist, answers and the evidence.

alice leads team web, bob is a member, carol an outsider, audrey the auditor, ada the admin. Web holds
write on web/**; alice gave erin write on web/app; carol reads web/docs (no team). A campaign "Q2" is
running: web's items go to alice, carol's grant and web's own grant to the admins.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import DirectoryGroup, Grant, Membership, ReviewCampaign, ReviewItem, Team, User
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db

LIST = "/reviews/"
PERSONAS = ("anonymous", "ada", "alice", "bob", "carol", "audrey")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict:
    erin = make_user("erin")
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    erins = services.lead_grant(web, erin, "web/app", "write", acting_user=alice, context=SYSTEM)
    carols = services.create_grant(carol, "web/docs", "read", context=SYSTEM)
    campaign = services.reviews.start_campaign("Q2", context=SYSTEM).campaign
    return {
        "ada": ada,
        "audrey": audrey,
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "erin": erin,
        "web": web,
        "erins": erins,
        "carols": carols,
        "campaign": campaign,
    }


def detail(world: dict) -> str:
    return f"/reviews/{world['campaign'].pk}/"


def item(world: dict, subject: str, kind: str = "grant") -> ReviewItem:
    return world["campaign"].items.get(subject=subject, kind=kind)


def answer_url(world: dict, verb: str, subject: str, kind: str = "grant") -> str:
    return f"{detail(world)}items/{item(world, subject, kind).pk}/{verb}"


# --- The list -----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["ada", "alice", "bob", "carol", "audrey"])
def test_everyone_signed_in_gets_the_list_as_far_as_it_concerns_them(world, persona: str) -> None:
    response = client_for(persona, world).get(LIST)
    assert response.status_code == 200
    body = response.content.decode()
    assert (f'href="{detail(world)}"' in body) == (persona in {"ada", "alice", "audrey"})
    assert ('action="/reviews/start"' in body) == (persona == "ada")


def test_anonymous_visitors_are_sent_to_sign_in(world) -> None:
    for url in (LIST, detail(world), detail(world) + "export", answer_url(world, "certify", "user erin")):
        response = Client().get(url) if not url.endswith("certify") else Client().post(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_a_lead_sees_what_waits_for_them_and_an_auditor_the_progress(world) -> None:
    lead = client_for("alice", world).get(LIST).content.decode()
    assert "<strong>3</strong> waiting" in lead  # alice's and bob's memberships, erin's grant
    auditor = client_for("audrey", world).get(LIST).content.decode()
    assert "0 / 5" in auditor


# --- Starting -----------------------------------------------------------------------------------


def test_an_admin_starts_a_review_and_lands_on_its_checklist(world) -> None:
    response = client_for("ada", world).post("/reviews/start", {"name": "Q3", "days": "7"})
    campaign = ReviewCampaign.objects.get(name="Q3")
    assert response.status_code == 302 and response["Location"] == f"/reviews/{campaign.pk}/"
    assert (campaign.deadline - campaign.started_at).days == 7
    assert campaign.started_by == world["ada"] and campaign.started_by_name == "ada"
    record = AuditRecord.objects.filter(detail__action="review.start").latest("id")
    assert record.actor == "ada"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "days": "7"}, "This field is required"),
        ({"name": "Q3", "days": "0"}, "greater than or equal to 1"),
        ({"name": "Q3", "days": "ten"}, "Enter a whole number"),
        ({"name": "Q3", "days": "9999"}, "less than or equal to 365"),
        ({"name": "Q3\x00", "days": "7"}, "Null characters are not allowed"),
    ],
)
def test_a_bad_start_is_a_400_naming_the_problem_and_starts_nothing(world, data: dict, message: str) -> None:
    response = client_for("ada", world).post("/reviews/start", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert ReviewCampaign.objects.count() == 1


@pytest.mark.parametrize("persona", ["alice", "bob", "carol", "audrey"])
def test_only_admins_start_reviews(world, persona: str) -> None:
    assert client_for(persona, world).post("/reviews/start", {"name": "Q3", "days": "7"}).status_code == 403
    assert ReviewCampaign.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "url"),
    [("post", LIST), ("get", "/reviews/start"), ("post", "DETAIL"), ("post", "EXPORT"), ("get", "CERTIFY")],
)
def test_it_rejects_the_wrong_method(world, method: str, url: str) -> None:
    url = {"DETAIL": detail(world), "EXPORT": detail(world) + "export"}.get(url, url)
    if url == "CERTIFY":
        url = answer_url(world, "certify", "user erin")
    assert getattr(client_for("ada", world), method)(url).status_code == 405


# --- The checklist ------------------------------------------------------------------------------


def test_an_admin_sees_every_item_and_may_answer_each(world) -> None:
    body = client_for("ada", world).get(detail(world)).content.decode()
    assert "user carol" in body and "user erin" in body and "team web" in body
    assert body.count(">Certify</button>") == ReviewItem.objects.count() == 5


def test_a_lead_sees_only_the_teams_items_each_with_two_separate_forms(world) -> None:
    body = client_for("alice", world).get(detail(world)).content.decode()
    assert "user erin" in body and "user carol" not in body and "web/**" not in body
    erin = item(world, "user erin")
    certify = f'action="{detail(world)}items/{erin.pk}/certify"'
    revoke = f'action="{detail(world)}items/{erin.pk}/revoke"'
    assert body.count(certify) == 1 and body.count(revoke) == 1
    form_with_certify = body.split(certify)[1].split("</form>")[0]
    assert "revoke" not in form_with_certify and 'name="action"' not in body


def test_an_auditor_sees_every_item_and_the_progress_but_no_button(world) -> None:
    body = client_for("audrey", world).get(detail(world)).content.decode()
    assert "user carol" in body and "user erin" in body
    assert ">Certify</button>" not in body and "Yes, revoke</button>" not in body and 'class="confirm"' not in body
    assert "Evidence as CSV" in body


@pytest.mark.parametrize("persona", ["bob", "carol"])
def test_people_who_lead_nothing_are_refused_the_checklist(world, persona: str) -> None:
    response = client_for(persona, world).get(detail(world))
    assert response.status_code == 403
    assert "web/app" not in response.content.decode()


def test_the_checklist_filters_by_state_and_team_and_pages(world) -> None:
    client = client_for("ada", world)
    services.reviews.certify(item(world, "user erin"), acting_user=world["ada"], context=SYSTEM)
    waiting = client.get(detail(world)).content.decode()
    assert "user erin" not in waiting.split('id="items"')[1]
    answered = client.get(detail(world), {"state": "answered"}).content.decode()
    assert "user erin" in answered and "by ada" in answered
    admins = client.get(detail(world), {"team": "(admins)", "state": "all"}).content.decode()
    assert "user carol" in admins and "user erin" not in admins.split('id="items"')[1]


def test_the_checklist_pages_fifty_items_at_a_time(world) -> None:
    for n in range(60):
        user = User.objects.create(username=f"u{n:02}")
        Grant.objects.create(user=user, pattern=f"pub/x{n}", role="read")
    campaign = services.reviews.start_campaign("Big", context=SYSTEM).campaign
    client = client_for("ada", world)
    first = client.get(f"/reviews/{campaign.pk}/").content.decode()
    assert first.count(">Certify</button>") == 50 and "Page 1 of 2" in first
    second = client.get(f"/reviews/{campaign.pk}/", {"page": "2"}).content.decode()
    assert second.count(">Certify</button>") == 65 - 50


@pytest.mark.parametrize("query", [{"state": "bogus"}, {"team": "nope"}, {"team": "x" * 500}])
def test_a_bad_filter_is_a_400_with_the_message(world, query: dict) -> None:
    response = client_for("ada", world).get(detail(world), query)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_a_lead_cannot_filter_to_another_teams_items(world) -> None:
    assert client_for("alice", world).get(detail(world), {"team": "(admins)"}).status_code == 400


def test_an_unknown_campaign_or_item_is_a_404(world) -> None:
    client = client_for("ada", world)
    assert client.get("/reviews/999/").status_code == 404
    assert client.post(f"{detail(world)}items/999999/certify").status_code == 404


# --- Answering ----------------------------------------------------------------------------------


def test_a_lead_certifies_and_comes_back_to_the_same_view(world) -> None:
    client = client_for("alice", world)
    back = f"{detail(world)}?state=all"
    response = client.post(answer_url(world, "certify", "bob", "membership"), {"next": back})
    assert response.status_code == 302 and response["Location"] == back
    assert item(world, "bob", "membership").decision == "certified"
    page = client.get(back).content.decode()
    assert "Certified bob&#x27;s membership of team web" in page and "by alice" in page


def test_a_lead_revokes_a_grant_through_the_services(world) -> None:
    response = client_for("alice", world).post(answer_url(world, "revoke", "user erin"))
    assert response.status_code == 302 and response["Location"] == detail(world)
    assert not Grant.objects.filter(pk=world["erins"].pk).exists()
    assert AuditRecord.objects.filter(detail__action="review.revoke", actor="alice").exists()
    assert AuditRecord.objects.filter(detail__action="grant.revoke", actor="alice").exists()


@pytest.mark.parametrize(
    ("persona", "subject"),
    [("bob", "user erin"), ("carol", "user erin"), ("audrey", "user erin"), ("alice", "user carol")],
)
def test_who_may_not_answer_gets_a_403_and_nothing_changes(world, persona: str, subject: str) -> None:
    client = client_for(persona, world)
    for verb in ("certify", "revoke"):
        assert client.post(answer_url(world, verb, subject)).status_code == 403
    assert item(world, subject).decision == ""
    assert Grant.objects.filter(pk=world["erins"].pk).exists() and Grant.objects.filter(pk=world["carols"].pk).exists()


def test_an_item_answered_twice_is_a_400_saying_who_answered(world) -> None:
    client = client_for("alice", world)
    client.post(answer_url(world, "certify", "user erin"))
    response = client.post(answer_url(world, "revoke", "user erin"))
    assert response.status_code == 400
    assert "already answered: certified by alice" in response.content.decode()
    assert Grant.objects.filter(pk=world["erins"].pk).exists()


def test_an_item_whose_grant_is_gone_is_marked_so_with_a_warning(world) -> None:
    services.revoke_grant(world["erins"], context=SYSTEM)
    client = client_for("alice", world)
    response = client.post(answer_url(world, "certify", "user erin"))
    assert response.status_code == 302
    assert item(world, "user erin").decision == "gone"
    page = client.get(detail(world) + "?state=all").content.decode()
    assert "the grant was revoked since the review started" in page


def test_revoking_a_membership_only_the_directory_gives_is_a_400_with_its_message(world) -> None:
    (group,) = services.directory.set_directory_groups(
        world["web"], [("cn=web-devs,ou=groups,dc=example,dc=org", "member")], context=SYSTEM
    )
    membership = Membership.objects.create(team=world["web"], user=world["carol"], role="member")
    membership.directory_groups.add(group)
    campaign = services.reviews.start_campaign("Q3", context=SYSTEM).campaign
    target = campaign.items.get(subject="carol", kind="membership")
    response = client_for("alice", world).post(f"/reviews/{campaign.pk}/items/{target.pk}/revoke")
    assert response.status_code == 400
    assert "comes only from directory groups" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists() and DirectoryGroup.objects.count() == 1
    target.refresh_from_db()
    assert target.decision == ""


def test_a_note_too_long_is_a_400_and_changes_nothing(world) -> None:
    response = client_for("alice", world).post(answer_url(world, "certify", "user erin"), {"note": "x" * 501})
    assert response.status_code == 400 and "at most 500 characters" in response.content.decode()
    assert item(world, "user erin").decision == ""


def test_an_answer_needs_the_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["alice"])
    assert client.post(answer_url(world, "certify", "user erin")).status_code == 403
    assert item(world, "user erin").decision == ""
    client.get(detail(world))
    token = client.cookies["csrftoken"].value
    response = client.post(answer_url(world, "certify", "user erin"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and item(world, "user erin").decision == "certified"


def test_an_offsite_next_is_ignored(world) -> None:
    response = client_for("alice", world).post(answer_url(world, "certify", "user erin"), {"next": "//evil.example/"})
    assert response["Location"] == detail(world)


# --- The evidence ----------------------------------------------------------------------------------


def decided(world: dict) -> None:
    """alice certifies bob's membership with a note a spreadsheet would run, and revokes erin's grant."""
    alice = {"acting_user": world["alice"], "context": AuditContext.for_user(world["alice"])}
    services.reviews.certify(item(world, "bob", "membership"), note='=HYPERLINK("http://x")', **alice)
    services.reviews.revoke(item(world, "user erin"), **alice)


def test_an_auditor_exports_the_evidence_as_csv(world) -> None:
    decided(world)
    response = client_for("audrey", world).get(detail(world) + "export", {"format": "csv"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    pk = world["campaign"].pk
    assert response["Content-Disposition"] == f'attachment; filename="review-{pk}-evidence.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 5 and list(rows[0]) == list(services.reviews.EVIDENCE_FIELDS)
    by_subject = {row["subject"]: row for row in rows}
    erin = by_subject["user erin"]
    assert (erin["decision"], erin["decided_by"], erin["pattern"], erin["role"]) == (
        "revoked",
        "alice",
        "web/app",
        "write",
    )
    assert erin["decided_at"].endswith("Z") and erin["team"] == "web"
    assert by_subject["bob"]["note"] == '\'=HYPERLINK("http://x")'  # shown as text, never run
    assert by_subject["user carol"]["team"] == "(admins)" and by_subject["user carol"]["decision"] == "waiting"
    record = AuditRecord.objects.get(kind=Kind.ADMIN_CHANGE, detail__action="review.export")
    assert record.actor == "audrey" and record.detail["after"] == {"format": "csv"}


def test_the_evidence_as_jsonl_is_one_object_a_line(world) -> None:
    decided(world)
    response = client_for("ada", world).get(detail(world) + "export", {"format": "jsonl"})
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(lines) == 5
    bob = next(line for line in lines if line["subject"] == "bob")
    assert bob["decision"] == "certified" and bob["note"].startswith("=HYPERLINK")  # JSON needs no quoting
    assert bob["escalated_at"] is None and bob["campaign"] == "Q2"


def test_an_unknown_export_format_is_a_400(world) -> None:
    response = client_for("audrey", world).get(detail(world) + "export", {"format": "xls"})
    assert response.status_code == 400
    assert "Export as csv or jsonl" in response.content.decode()
    assert not AuditRecord.objects.filter(detail__action="review.export").exists()


@pytest.mark.parametrize("persona", ["alice", "bob", "carol"])
def test_only_admins_and_auditors_export(world, persona: str) -> None:
    assert client_for(persona, world).get(detail(world) + "export").status_code == 403


# --- Home ---------------------------------------------------------------------------------------


def test_a_leads_home_page_says_what_reviews_wait_for_them(world) -> None:
    body = client_for("alice", world).get("/").content.decode()
    assert "Reviews waiting for you" in body and f'href="{detail(world)}"' in body and "3 items" in body
    assert "Reviews waiting" not in client_for("bob", world).get("/").content.decode()
    assert "2 items" in client_for("ada", world).get("/").content.decode()  # carol's grant and web's own


def test_the_navigation_links_the_reviews(world) -> None:
    assert f'href="{reverse("reviews:list")}"' in client_for("bob", world).get("/").content.decode()
