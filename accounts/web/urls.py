"""Every dashboard URL in one place; each group keeps its namespace (``teams:detail``, ``users:list``, ...).

``registryadmin/urls.py`` includes ``urlpatterns`` at the site root. Inside a group, "new" comes before the
``<name>/`` routes so it never reads as a name.

Was ``accounts/urls.py`` and the ten ``accounts/*_urls.py`` modules before the layout split.
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.web.views import (
    access,
    backups,
    doctor,
    grants,
    home,
    keys,
    registries,
    repositories,
    reviews,
    robots,
    setup,
    signin,
    suggest,
    teams,
    tokens,
    unused,
    users,
)

account_patterns = [
    path("", home.home, name="home"),
    path("me/", home.my_access, name="my_access"),
    path("login/", signin.SignInView.as_view(), name="login"),
    path("holds/<int:pk>/lift", signin.lift_hold, name="lift_hold"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

# Members, auditors and admins see a team; its leads change it; admins make it.
team_patterns = [
    path("", teams.team_list, name="list"),
    path("new", teams.team_new, name="new"),
    path("<slug:name>/", teams.team_detail, name="detail"),
    path("<slug:name>/edit", teams.team_edit, name="edit"),
    path("<slug:name>/delete", teams.team_delete, name="delete"),
    path("<slug:name>/members/add", teams.add_member, name="add_member"),
    path("<slug:name>/members/<str:username>/remove", teams.remove_member, name="remove_member"),
    path("<slug:name>/grants/add", teams.add_grant, name="add_grant"),
    path("<slug:name>/grants/<int:grant_id>/revoke", teams.revoke_grant, name="revoke_grant"),
    path("<slug:name>/grants/<int:grant_id>/expiry", teams.grant_expiry, name="grant_expiry"),
    path("<slug:name>/robots/add", teams.add_robot, name="add_robot"),
    path("<slug:name>/robots/<int:pk>/revoke", teams.revoke_robot, name="revoke_robot"),
    path("<slug:name>/directory-groups/add", teams.add_directory_group, name="add_directory_group"),
    path("<slug:name>/directory-groups/<int:pk>/remove", teams.remove_directory_group, name="remove_directory_group"),
]

access_patterns = [
    path("unused/", unused.unused_list, name="unused"),
    path("unused/apply", unused.unused_apply, name="unused_apply"),
    path("unused/dismiss", unused.unused_dismiss, name="unused_dismiss"),
    path("who", access.who, name="who"),
    path("why", access.why, name="why"),
    path("user/<str:username>", access.user_access, name="user"),
    path("robot/<str:login>", access.robot_access, name="robot"),
]

# Access reviews: admins start them, leads answer their teams' items, auditors follow and export.
review_patterns = [
    path("", reviews.review_list, name="list"),
    path("start", reviews.review_start, name="start"),
    path("<int:pk>/", reviews.review_detail, name="detail"),
    path("<int:pk>/export", reviews.review_export, name="export"),
    path("<int:pk>/items/<int:item>/certify", reviews.item_certify, name="certify"),
    path("<int:pk>/items/<int:item>/revoke", reviews.item_revoke, name="revoke"),
]

setup_patterns = [
    path("", setup.setup, name="index"),
]

# My personal access tokens: every signed-in user, for their own tokens.
token_patterns = [
    path("", tokens.token_list, name="list"),
    path("new", tokens.token_new, name="new"),
    path("<int:pk>/revoke", tokens.token_revoke, name="revoke"),
]

# The /manage/ pages: admins and auditors read, admins change.
user_patterns = [
    path("", users.user_list, name="list"),
    path("new", users.user_new, name="new"),
    path("<str:username>/", users.user_detail, name="detail"),
    path("<str:username>/edit", users.user_edit, name="edit"),
    path("<str:username>/password", users.user_password, name="password"),
    path("<str:username>/active", users.user_active, name="active"),
    path("<str:username>/refresh-tokens/revoke", users.revoke_refresh, name="revoke_refresh"),
    path("<str:username>/teams/add", users.add_to_team, name="add_to_team"),
]

registry_patterns = [
    path("", registries.registry_list, name="list"),
    path("new", registries.registry_new, name="new"),
    path("<str:service>/", registries.registry_detail, name="detail"),
    path("<str:service>/edit", registries.registry_edit, name="edit"),
    path("<str:service>/prepare", registries.registry_prepare, name="prepare"),
    path("<str:service>/rotate-secret", registries.registry_rotate_secret, name="rotate_secret"),
    path("<str:service>/bundle.pem", registries.registry_bundle, name="bundle"),
    path("<str:service>/doctor", doctor.registry_doctor, name="doctor"),  # GET: overseers; POST runs it: admins
]

repository_patterns = [
    path("", repositories.repository_list, name="list"),
    path("new", repositories.repository_new, name="new"),
    path("<int:pk>/", repositories.repository_detail, name="detail"),
    path("<int:pk>/access", repositories.repository_access, name="access"),
    path("<int:pk>/public", repositories.repository_public, name="public"),
    path("<int:pk>/delete", repositories.repository_delete, name="delete"),
]

grant_patterns = [
    path("", grants.grant_list, name="list"),
    path("new", grants.grant_new, name="new"),
    path("<int:pk>/edit", grants.grant_edit, name="edit"),
    path("<int:pk>/revoke", grants.grant_revoke, name="revoke"),
]

robot_patterns = [
    path("", robots.robot_list, name="list"),
    path("new", robots.robot_new, name="new"),
    path("<int:pk>/revoke", robots.robot_revoke, name="revoke"),
    path("<int:pk>/rotate", robots.robot_rotate, name="rotate"),
]

key_patterns = [
    path("", keys.key_list, name="list"),
    path("rotate", keys.key_rotate, name="rotate"),
]

# Suggestions as you type for people and team fields: team leads, auditors and admins.
suggest_patterns = [
    path("users", suggest.users, name="users"),
    path("teams", suggest.teams, name="teams"),
]

# Admins only: a backup holds every password hash and the private signing keys.
backup_patterns = [
    path("", backups.backup_list, name="list"),
    path("run", backups.backup_run, name="run"),
    path("<int:pk>/progress", backups.backup_progress, name="progress"),
    path("<int:pk>/download", backups.backup_download, name="download"),
]

urlpatterns = [
    path("teams/", include((team_patterns, "teams"))),
    path("access/", include((access_patterns, "access"))),
    path("reviews/", include((review_patterns, "reviews"))),
    path("setup/", include((setup_patterns, "setup"))),
    path("me/tokens/", include((token_patterns, "tokens"))),
    path("manage/users/", include((user_patterns, "users"))),
    path("manage/registries/", include((registry_patterns, "registries"))),
    path("manage/repositories/", include((repository_patterns, "repositories"))),
    path("manage/grants/", include((grant_patterns, "grants"))),
    path("manage/robots/", include((robot_patterns, "robots"))),
    path("manage/keys/", include((key_patterns, "keys"))),
    path("manage/backups/", include((backup_patterns, "backups"))),
    path("suggest/", include((suggest_patterns, "suggest"))),
    path("", include((account_patterns, "accounts"))),
]
