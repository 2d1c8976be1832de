"""Account settings, tokens, organizations and profiles. Mounted at the site root (hub/urls.py)."""

from django.urls import path, register_converter

from accounts import views, views_org_tokens


class NameConverter:
    """A namespace or team name as it may appear in a URL (validated properly by the views)."""

    regex = r"[A-Za-z0-9_-]{1,30}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(NameConverter, "account_name")

app_name = "accounts"

urlpatterns = [
    path("settings", views.settings_profile, name="settings"),
    path("settings/tokens", views.token_list, name="token_list"),
    path("settings/tokens/<int:pk>/revoke", views.token_revoke, name="token_revoke"),
    path("settings/delete", views.account_delete, name="account_delete"),
    path("orgs", views.org_list, name="org_list"),
    path("orgs/new", views.org_create, name="org_create"),
    path("orgs/<account_name:name>", views.org_detail, name="org_detail"),
    path("orgs/<account_name:name>/settings", views.org_settings, name="org_settings"),
    path("orgs/<account_name:name>/settings/retention", views.org_retention, name="org_retention"),
    path("orgs/<account_name:name>/settings/access-tokens", views_org_tokens.org_access_tokens,
         name="org_access_tokens"),
    path("orgs/<account_name:name>/settings/access-tokens/<int:pk>/revoke",
         views_org_tokens.org_access_token_revoke_view, name="org_access_token_revoke"),
    path("orgs/<account_name:name>/leave", views.org_leave, name="org_leave"),
    path("orgs/<account_name:name>/delete", views.org_delete, name="org_delete"),
    path("orgs/<account_name:name>/teams/new", views.team_create, name="team_create"),
    path("orgs/<account_name:name>/teams/<account_name:team>", views.team_detail, name="team_detail"),
    path("orgs/<account_name:name>/teams/<account_name:team>/members", views.team_member_add, name="team_member_add"),
    path("orgs/<account_name:name>/teams/<account_name:team>/members/<account_name:username>/remove",
         views.team_member_remove, name="team_member_remove"),
    path("orgs/<account_name:name>/teams/<account_name:team>/delete", views.team_delete, name="team_delete"),
    path("u/<account_name:name>", views.profile, name="profile"),
]
