"""The audit log's faces: Docker Hub's `/v2/auditlogs/<account>` API and the Activity tab (with its CSV).

Organization owners read their organization's log and each account its own; for anyone else the log
does not exist (404). Reading and filtering are accounts/audit.py's.
"""

from __future__ import annotations

import csv
import datetime as dt

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import audit
from accounts.models import Namespace
from hub.api import HubPagination

CSV_COLUMNS = ("timestamp", "action", "action_description", "name", "actor", "data")


def _account_or_404(user, name: str) -> Namespace:
    account = (Namespace.objects.select_related("organization").filter(name=name.lower(), deleted_at=None)
               .exclude(kind=Namespace.Kind.LIBRARY).first())
    if account is None or not audit.may_read(user, account):
        raise Http404
    return account


def _moment(value: str, *, end: bool = False) -> dt.datetime | None:
    """An ISO date or date-time from a filter; a bare date means its whole day."""
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or date-time (ISO 8601)")
        moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _filtered(account: Namespace, params) -> object:
    return audit.events_for(account, action=params.get("action", "")[:64], name=params.get("name", "")[:300],
                            actor=params.get("actor", "")[:150], since=_moment(params.get("from", "")),
                            until=_moment(params.get("to", ""), end=True))


class AuditLogView(APIView):
    """`GET /v2/auditlogs/<account>`: the account's events, newest first."""

    permission_classes = [IsAuthenticated]

    @extend_schema(summary="An account's or organization's audit log", parameters=[
        OpenApiParameter(name, str, required=False, description=text) for name, text in (
            ("action", "an action (repo.tag.push) or a group prefix (repo)"), ("name", "part of the target's name"),
            ("actor", "the acting account"), ("from", "ISO date or date-time"), ("to", "ISO date or date-time"))],
        responses={200: None})
    def get(self, request: Request, account: str) -> Response:
        try:
            found = _account_or_404(request.user, account)
            events = _filtered(found, request.query_params)
        except Http404:
            raise exceptions.NotFound("Object not found.") from None
        except ValueError as exc:
            raise exceptions.ValidationError({"from/to": [str(exc)]}) from None
        paginator = HubPagination()
        page = paginator.paginate_queryset(events.select_related("account"), request, view=self)
        organization = found.organization_id is not None
        return Response({"count": paginator.page.paginator.count, "next": paginator.get_next_link(),
                         "previous": paginator.get_previous_link(),
                         "logs": [audit.event_data(event, organization=organization) for event in page]})


class AuditActionsView(APIView):
    """`GET /v2/auditlogs/<account>/actions`: the actions its log may hold, by group."""

    permission_classes = [IsAuthenticated]

    @extend_schema(summary="The actions an audit log records", responses={200: None})
    def get(self, request: Request, account: str) -> Response:
        try:
            found = _account_or_404(request.user, account)
        except Http404:
            raise exceptions.NotFound("Object not found.") from None
        groups: dict[str, dict] = {}
        for name, (group, description) in audit.ACTIONS.items():
            if found.organization_id is not None and name in audit.ACCOUNT_LEVEL:
                continue
            groups.setdefault(group, {"label": audit.GROUP_LABELS[group], "actions": []})["actions"].append(
                {"name": name, "description": description, "label": description})
        return Response({"actions": groups})


@login_required
def activity(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """The Activity tab: an organization's (for its owners) or one's own account's, with filters and CSV."""
    account = _account_or_404(request.user, name or request.user.username)
    error = ""
    try:
        events = _filtered(account, request.GET)
    except ValueError as exc:
        events, error = audit.events_for(account), str(exc)
    organization = account.organization_id is not None
    if request.GET.get("format") == "csv" and not error:
        return _csv(account, events, organization=organization)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    rows = [audit.event_data(event, organization=organization) for event in page.object_list]
    context = {"account": account, "page": page, "rows": rows, "error": error, "filters": request.GET,
               "actions": [(key, text) for key, (_, text) in audit.ACTIONS.items()
                           if not (organization and key in audit.ACCOUNT_LEVEL)],
               "organization": account.organization, "tab": "activity", "is_owner": organization}
    template = "accounts/org_activity.html" if organization else "accounts/settings_activity.html"
    return render(request, template, context, status=400 if error else 200)


def _csv(account: Namespace, events, *, organization: bool) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{account.name}-activity.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for event in events.select_related("account")[:100000].iterator(chunk_size=1000):
        row = audit.event_data(event, organization=organization)
        writer.writerow([audit.csv_cell(row[column] if column != "data" else _data_text(row["data"]))
                         for column in CSV_COLUMNS])
    return response


def _data_text(data: dict) -> str:
    return "; ".join(f"{key}={value}" for key, value in sorted(data.items()))
