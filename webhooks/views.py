"""The Webhooks tab (repository admins only; everyone else gets 404) and the legacy callback."""

from __future__ import annotations

import json
import uuid
from functools import wraps

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from repositories import selectors
from repositories.models import Repository
from repositories.permissions import ADMIN
from webhooks import services
from webhooks.forms import WebhookForm
from webhooks.models import Delivery, Webhook
from webhooks.validation import format_header_lines

HISTORY_PAGE_SIZE = 25
MAX_CALLBACK_BYTES = 8 * 1024
SECRET_SESSION_KEY = "webhooks:new-secret:{}"


def repository_admin_page(view):
    """Load the repository named in the URL for a user who administers it (404 for anyone else: never
    tell strangers it exists); the view gets its RepositoryAccess, which the repository's page frame
    (header, pull box, tabs) needs."""

    @wraps(view)
    def wrapper(request: HttpRequest, namespace: str, name: str, *args, **kwargs):
        access = selectors.repository_for_request(request, namespace, name, need=ADMIN)
        return view(request, access, *args, **kwargs)

    return wrapper


def _webhook(repository: Repository, pk: int) -> Webhook:
    return get_object_or_404(Webhook, pk=pk, repository=repository)


def _url(repository: Repository, view: str, **kwargs) -> str:
    return reverse(f"webhooks:{view}", kwargs={"namespace": repository.namespace.name, "name": repository.name,
                                               **kwargs})


def _context(access: selectors.RepositoryAccess, **extra) -> dict:
    """The repository page's context (templates/repositories/base_repository.html) on the Webhooks tab."""
    repository = access.repository
    return {"repository": repository, "access": access, "tab": "webhooks", "pull_name": repository.display_name,
            "list_url": _url(repository, "list"), **extra}


@repository_admin_page
def webhook_list(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    # The secret and headers are not shown here: not loaded, not decrypted.
    webhooks = list(Webhook.objects.filter(repository=repository).defer("secret", "headers"))
    latest = {}
    for delivery in (Delivery.objects.filter(webhook__in=webhooks).order_by("webhook_id", "-created_at")
                     .only("webhook_id", "state", "created_at", "response_status", "event")):
        latest.setdefault(delivery.webhook_id, delivery)
    rows = [(hook, latest.get(hook.pk)) for hook in webhooks]
    return render(request, "webhooks/list.html", _context(access, rows=rows))


@repository_admin_page
def webhook_create(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            webhook = services.webhook_create(
                repository=repository, name=data["name"], url=data["url"], events=data["events"],
                secret=data["secret"], headers=data["headers"], active=data["active"], user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if webhook.secret:
                request.session[SECRET_SESSION_KEY.format(webhook.pk)] = webhook.secret
            messages.success(request, f"Created the webhook “{webhook.name}”. Send a test delivery to try it.")
            return redirect(_url(repository, "detail", pk=webhook.pk))
    status = 400 if request.method == "POST" else 200
    return render(request, "webhooks/form.html", _context(access, form=form), status=status)


def _history(request: HttpRequest, webhook: Webhook):
    deliveries = Delivery.objects.filter(webhook=webhook).defer("body", "response_body", "request_headers")
    return Paginator(deliveries, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))


@repository_admin_page
def webhook_detail(request: HttpRequest, access: selectors.RepositoryAccess, pk: int) -> HttpResponse:
    repository = access.repository
    webhook = _webhook(repository, pk)
    page = _history(request, webhook)
    has_pending = any(delivery.state == Delivery.State.PENDING for delivery in page)
    if request.headers.get("HX-Request") and request.GET.get("partial") == "deliveries":
        return render(request, "webhooks/_deliveries.html",
                      _context(access, webhook=webhook, page=page, has_pending=has_pending))
    initial = {"name": webhook.name, "url": webhook.url, "events": webhook.events, "active": webhook.active,
               "headers": format_header_lines(services.headers_masked(webhook.headers))}
    form = WebhookForm(request.POST or None, webhook=webhook, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.webhook_update(webhook=webhook, name=data["name"], url=data["url"], events=data["events"],
                                        secret=form.secret_change(), headers=data["headers"], active=data["active"])
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Saved the webhook “{webhook.name}”.")
                return redirect(_url(repository, "detail", pk=webhook.pk))
        status = 400
    new_secret = request.session.pop(SECRET_SESSION_KEY.format(webhook.pk), None)
    return render(request, "webhooks/detail.html",
                  _context(access, webhook=webhook, form=form, page=page, has_pending=has_pending,
                           new_secret=new_secret), status=status)


@require_POST
@repository_admin_page
def webhook_toggle(request: HttpRequest, access: selectors.RepositoryAccess, pk: int) -> HttpResponse:
    repository = access.repository
    webhook = _webhook(repository, pk)
    services.webhook_set_active(webhook=webhook, active=not webhook.active)
    messages.success(request, f"“{webhook.name}” is now {'active' if webhook.active else 'disabled'}.")
    if request.POST.get("next") == "list":
        return redirect(_url(repository, "list"))
    return redirect(_url(repository, "detail", pk=webhook.pk))


@repository_admin_page
def webhook_delete(request: HttpRequest, access: selectors.RepositoryAccess, pk: int) -> HttpResponse:
    repository = access.repository
    webhook = _webhook(repository, pk)
    if request.method == "POST":
        services.webhook_delete(webhook=webhook)
        messages.success(request, f"Deleted the webhook “{webhook.name}”.")
        return redirect(_url(repository, "list"))
    return render(request, "webhooks/delete.html", _context(access, webhook=webhook))


@require_POST
@repository_admin_page
def webhook_test(request: HttpRequest, access: selectors.RepositoryAccess, pk: int) -> HttpResponse:
    repository = access.repository
    webhook = _webhook(repository, pk)
    delivery = services.webhook_ping(webhook=webhook, user=request.user)
    messages.success(request, "Queued a test delivery (event ping). Its result appears in the history below.")
    return redirect(_url(repository, "delivery", pk=webhook.pk, delivery_id=delivery.pk))


def _delivery(webhook: Webhook, delivery_id: uuid.UUID) -> Delivery:
    return get_object_or_404(Delivery, pk=delivery_id, webhook=webhook)


@repository_admin_page
def delivery_detail(request: HttpRequest, access: selectors.RepositoryAccess, pk: int,
                    delivery_id: uuid.UUID) -> HttpResponse:
    webhook = _webhook(access.repository, pk)
    delivery = _delivery(webhook, delivery_id)
    request_headers = services.request_headers_masked(delivery.request_headers)
    return render(request, "webhooks/delivery.html",
                  _context(access, webhook=webhook, delivery=delivery, request_headers=request_headers,
                           headers_hidden=services.HEADER_MASK in request_headers.values()))


@require_POST
@repository_admin_page
def delivery_redeliver(request: HttpRequest, access: selectors.RepositoryAccess, pk: int,
                       delivery_id: uuid.UUID) -> HttpResponse:
    repository = access.repository
    webhook = _webhook(repository, pk)
    copy = services.delivery_redeliver(delivery=_delivery(webhook, delivery_id))
    messages.success(request, "Queued a redelivery of the same payload.")
    return redirect(_url(repository, "delivery", pk=webhook.pk, delivery_id=copy.pk))


@csrf_exempt
@require_POST
def delivery_callback(request: HttpRequest, namespace: str, name: str, callback_id: str) -> JsonResponse:
    """Docker Hub's legacy callback: the receiver POSTs {state, description, context, target_url} once."""
    try:
        delivery_uuid = uuid.UUID(hex=callback_id)
    except ValueError:
        raise Http404("No such delivery") from None
    delivery = Delivery.objects.filter(pk=delivery_uuid).first()
    if delivery is None or delivery.repository_name != f"{namespace}/{name}":
        raise Http404("No such delivery")
    if len(request.body) > MAX_CALLBACK_BYTES:
        return JsonResponse({"error": "The callback body is too large."}, status=413)
    try:
        data = json.loads(request.body or b"null")
    except ValueError:
        return JsonResponse({"error": "Send a JSON object."}, status=400)
    try:
        services.delivery_callback(delivery=delivery, data=data)
    except ValidationError as exc:
        status = 409 if exc.code == "duplicate" else 400
        return JsonResponse({"error": " ".join(exc.messages)}, status=status)
    return JsonResponse({"state": delivery.callback_state, "description": delivery.callback_description,
                         "context": delivery.callback_context, "target_url": delivery.callback_target_url})
