"""Access review pages: admins start campaigns, leads answer their teams' items, auditors follow and export.

Who gets what (the rules are ``services.reviews``'s, so what a page shows is what its forms may do):

- ``/reviews/``: every signed-in person; admins and auditors see every campaign's progress, leads the
  campaigns that ask their teams something, with what waits for them; others see that nothing does.
  Admins get the start form (``reviews:start``, POST, admins only).
- ``/reviews/<pk>/``: admins and auditors every item, a lead their teams' items (403 for anyone who
  leads no team), filtered by state and team, 50 a page, with each team's progress. Each waiting item
  someone may answer has two small POST forms, Certify and Revoke, each to its own URL.
- ``/reviews/<pk>/export?format=csv|jsonl``: the evidence, streamed, for admins and auditors.

An answer the service refuses for its input (already answered, a membership only the directory gives)
is the checklist again with the message and 400; an item whose right is gone is marked so, with a
warning, and the page comes back.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts import authz, services
from accounts.models import ReviewCampaign, ReviewItem
from accounts.web.forms.common import add_service_error
from accounts.web.forms.reviews import AnswerForm, ExportForm, ItemFilterForm, StartReviewForm
from audit.context import AuditContext
from audit.exporting import CONTENT_TYPES
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import next_url
from registryadmin.paging import page_of

reviews = services.reviews


def _list_page(request: HttpRequest, form: StartReviewForm | None = None, status: int = 200) -> HttpResponse:
    user = request.user
    led = authz.led_team_ids(user)
    campaigns = ReviewCampaign.objects.order_by("-started_at", "-pk")
    if not reviews.sees_every_item(user):
        campaigns = campaigns.filter(pk__in=ReviewItem.objects.filter(team_id__in=led).values("campaign"))
    page = page_of(request, campaigns)
    ids = [campaign.pk for campaign in page.object_list]
    items = ReviewItem.objects.filter(campaign_id__in=ids)
    counts = reviews.progress(items if reviews.sees_every_item(user) else items.filter(team_id__in=led), "campaign")
    waiting = {row["campaign"].pk: row["waiting"] for row in reviews.waiting_for(user)}
    page.object_list = [
        {"campaign": c, "progress": counts.get(c.pk), "waiting": waiting.get(c.pk, 0)} for c in page.object_list
    ]
    if form is None and is_admin(user):
        form = StartReviewForm()
    context = {"page": page, "form": form, "sees_all": reviews.sees_every_item(user), "leads": bool(led)}
    return render(request, "reviews/list.html", context, status=status)


@require_GET
@login_required
def review_list(request: HttpRequest) -> HttpResponse:
    """Campaigns with their progress, as far as the person may see them."""
    return _list_page(request)


@require_POST
@admin_required
def review_start(request: HttpRequest) -> HttpResponse:
    """Start a campaign now: every right frozen into a checklist, each lead mailed."""
    form = StartReviewForm(request.POST)
    if form.is_valid():
        try:
            started = reviews.start_campaign(
                form.cleaned_data["name"],
                days=form.cleaned_data["days"],
                started_by=request.user,
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            counts = started.counts
            messages.success(
                request,
                f"Started {started.campaign.name}: {counts['items']} items, {counts['for_admins']} of them for "
                f"administrators; {started.mailed} lead{'s' if started.mailed != 1 else ''} mailed.",
            )
            return redirect("reviews:detail", pk=started.campaign.pk)
    return _list_page(request, form, status=400)


def _detail_page(request: HttpRequest, campaign: ReviewCampaign, *, status: int = 200, error: str = "") -> HttpResponse:
    user = request.user
    visible = reviews.visible_items(user, campaign)  # 403 for who leads no team and oversees nothing
    teams = reviews.progress(visible, "team_name")
    default_state = "all" if user.is_auditor and not user.is_superuser else "waiting"
    form = ItemFilterForm(request.GET, teams=sorted(teams), default_state=default_state)
    valid = form.is_valid()
    page = page_of(request, form.apply(visible) if valid else visible.none())
    led = authz.led_team_ids(user)
    for item in page.object_list:
        item.answerable = not item.decision and reviews.may_answer(user, item, led)
    context: dict[str, Any] = {
        "campaign": campaign,
        "form": form,
        "page": page,
        "teams": sorted(teams.items()),
        "total": sum(teams.values(), reviews.Progress()),
        "sees_all": reviews.sees_every_item(user),
        "admins_label": reviews.ADMINS,
        "action_error": error,
        # Where an answer comes back to: this view of the checklist (after a refused POST or export, the plain one).
        "back": request.get_full_path() if request.resolver_match.url_name == "detail" else _checklist(campaign),
    }
    return render(request, "reviews/detail.html", context, status=status if valid else 400)


@require_GET
@login_required
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The checklist: filtered by ``?state=waiting|escalated|answered|all`` and ``?team=NAME``."""
    return _detail_page(request, get_object_or_404(ReviewCampaign, pk=pk))


@require_GET
@overseer_required
def review_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The evidence of one campaign, every item with its decision, as ``?format=csv`` (default) or ``jsonl``."""
    campaign = get_object_or_404(ReviewCampaign, pk=pk)
    form = ExportForm(request.GET)
    if not form.is_valid():
        return _detail_page(request, campaign, status=400, error="Export as csv or jsonl (?format=csv|jsonl).")
    fmt = form.cleaned_data["format"] or "csv"
    lines = reviews.evidence_lines(campaign, fmt, AuditContext.from_request(request))
    response = StreamingHttpResponse(lines, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="review-{campaign.pk}-evidence.{fmt}"'
    return response


def _checklist(campaign: ReviewCampaign) -> str:
    return reverse("reviews:detail", kwargs={"pk": campaign.pk})


def _answer(request: HttpRequest, pk: int, item_pk: int, act: Any) -> HttpResponse:
    campaign = get_object_or_404(ReviewCampaign, pk=pk)
    item = get_object_or_404(ReviewItem, pk=item_pk, campaign=campaign)
    if not reviews.may_answer(request.user, item):
        raise PermissionDenied("Only administrators and the team's leads answer this item.")
    form = AnswerForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return _detail_page(request, campaign, status=400, error=problems)
    try:
        answer = act(
            item, acting_user=request.user, context=AuditContext.from_request(request), note=form.cleaned_data["note"]
        )
    except ValidationError as exc:
        return _detail_page(request, campaign, status=400, error=" ".join(exc.messages))
    (messages.warning if answer.decision == "gone" else messages.success)(request, answer.message)
    return redirect(next_url(request, _checklist(campaign)))


@require_POST
@login_required
def item_certify(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    """Keep one item's right as it is."""
    return _answer(request, pk, item, reviews.certify)


@require_POST
@login_required
def item_revoke(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    """Take one item's right back, through the same services as the team page."""
    return _answer(request, pk, item, reviews.revoke)
