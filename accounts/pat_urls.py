"""My personal access tokens, under /me/tokens/ (every signed-in user, for their own tokens)."""

from django.urls import path

from accounts import pat_views

app_name = "tokens"

urlpatterns = [
    path("", pat_views.token_list, name="list"),
    path("new", pat_views.token_new, name="new"),
    path("<int:pk>/revoke", pat_views.token_revoke, name="revoke"),
]
