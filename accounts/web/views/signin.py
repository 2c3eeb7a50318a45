"""Web sign-in under the failure limits, and lifting a hold from the admin home page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import services
from accounts.bootstrap import PASSWORD_FILE
from accounts.models import AuthHold, HoldScope, User
from audit.context import AuditContext
from registryadmin.guards import admin_required

FAILED_CODES = ("invalid_login", "inactive")


class SignInView(auth_views.LoginView):
    """Django's login view, refusing held (username, address) pairs and addresses with a 429."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # Until someone has signed in, the first administrator needs to know where bootstrap wrote their
        # password (only when it did: an ADMIN_PASSWORD from the environment leaves no file to point at).
        password_file = settings.DATA_DIR / PASSWORD_FILE
        if not User.objects.filter(last_login__isnull=False).exists() and password_file.exists():
            context["initial_password_file"] = password_file
            context["admin_username"] = settings.ADMIN_USERNAME
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.username = str(request.POST.get("username", ""))[:150]
        self.checked = services.limits.check(self.username, getattr(request, "client_ip", None))
        hold = self.checked.hold
        if hold is None:
            return super().post(request, *args, **kwargs)
        services.limits.record_held_signin(AuditContext.from_request(request), hold, self.username)
        response = self.render_to_response(
            self.get_context_data(form=self.get_form_class()(request), held_for=hold.retry_after()), status=429
        )
        response["Retry-After"] = str(hold.retry_after())
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        if unavailable := getattr(self.request, "directory_unavailable", ""):
            # Not the person's fault: not counted against the limits, and said plainly (503).
            form.errors[NON_FIELD_ERRORS] = form.error_class(
                [
                    f"The directory cannot be reached, so directory accounts cannot sign in right now "
                    f"({unavailable}). Try again in a minute; local accounts are not affected."
                ]
            )
            response = self.render_to_response(self.get_context_data(form=form), status=503)
            response["Retry-After"] = str(services.directory.RETRY_AFTER)
            return response
        if any(form.has_error(NON_FIELD_ERRORS, code) for code in FAILED_CODES):
            services.limits.failed(self.username, getattr(self.request, "client_ip", None))
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponseRedirect:
        services.limits.succeeded(self.username, getattr(self.request, "client_ip", None), self.checked)
        return super().form_valid(form)


@require_POST
@admin_required
def lift_hold(request: HttpRequest, pk: int) -> HttpResponse:
    """Lift one hold from the admin home page (audited as ``limit.lift``)."""
    hold = get_object_or_404(AuthHold, pk=pk)
    context = AuditContext.from_request(request)
    if hold.scope == HoldScope.ADDRESS:
        lifted = services.limits.lift(context, ip=hold.ip)
    else:
        lifted = services.limits.lift(context, ip=hold.ip, username=hold.username)
    messages.success(request, f"Lifted the hold on {', '.join(lifted) or services.limits.describe(hold)}.")
    return redirect(reverse("accounts:home"))
