"""`{% client_commands "pull" "alice/app:v1" %}`: the same command for docker, podman and skopeo behind a
small switch (radio buttons styled as tabs: it works without JavaScript; wharf.js only remembers the
choice across the page), each line with a copy button.

On a hub whose public URL is plain http://, podman and skopeo get `--tls-verify=false` (their default is
HTTPS: "http: server gave HTTP response to HTTPS client") and every client gets its insecure-registry
hint: docker's `insecure-registries` in daemon.json, registries.conf's `insecure = true` for podman."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from django import template
from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ACTIONS = ("pull", "push", "login")
_ids = itertools.count(1)


@dataclass
class Client:
    name: str
    commands: list[str] = field(default_factory=list)
    hint: str = ""  # plain text; `code` spans are marked with backticks
    hint_code: str = ""  # a configuration snippet shown after the hint


def plain_http() -> bool:
    return settings.HUB_PUBLIC_URL.startswith("http://")


def _archive_name(reference: str) -> str:
    """alice/app:v1 → app-v1.tar, alice/app → app.tar (skopeo's local copy)."""
    name, _, tag = reference.rpartition("/")[2].replace("<", "").replace(">", "").partition(":")
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{name}-{tag}" if tag else name) + ".tar"


def clients_for(action: str, reference: str = "", local: str = "my-image", username: str = "") -> list[Client]:
    """The docker, podman and skopeo commands for `action` on `reference` (namespace/name[:tag]); `local`:
    the local image a push starts from; `username`: the name `login` signs in with (-u)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    host = settings.HUB_PUBLIC_HOST
    image = f"{host}/{reference}"
    insecure = plain_http()
    tls = " --tls-verify=false" if insecure else ""
    src_tls = " --src-tls-verify=false" if insecure else ""
    dest_tls = " --dest-tls-verify=false" if insecure else ""
    docker, podman, skopeo = Client("docker"), Client("podman"), Client("skopeo")
    if action == "pull":
        docker.commands = [f"docker pull {image}"]
        podman.commands = [f"podman pull{tls} {image}"]
        skopeo.commands = [f"skopeo copy{src_tls} docker://{image} oci-archive:{_archive_name(reference)}"]
    elif action == "push":
        docker.commands = [f"docker login {host}", f"docker tag {local} {image}", f"docker push {image}"]
        podman.commands = [f"podman login{tls} {host}", f"podman tag {local} {image}", f"podman push{tls} {image}"]
        skopeo.commands = [f"skopeo login{tls} {host}",
                           f"skopeo copy{dest_tls} oci-archive:{_archive_name(local)} docker://{image}"]
    else:
        user = f" -u {username}" if username else ""
        docker.commands = [f"docker login{user} {host}"]
        podman.commands = [f"podman login{tls}{user} {host}"]
        skopeo.commands = [f"skopeo login{tls}{user} {host}"]
    if insecure:
        docker.hint = ("This hub speaks plain HTTP. Docker accepts that from 127.0.0.1 as is; from anywhere else "
                       "add it to `insecure-registries` in `/etc/docker/daemon.json`, then restart Docker:")
        docker.hint_code = f'{{ "insecure-registries": ["{host}"] }}'
        podman.hint = ("This hub speaks plain HTTP, hence `--tls-verify=false`. Or mark it insecure once in "
                       "`/etc/containers/registries.conf` (or `~/.config/containers/registries.conf`):")
        podman.hint_code = f'[[registry]]\nlocation = "{host}"\ninsecure = true'
        skopeo.hint = "This hub speaks plain HTTP, hence the `tls-verify=false` options."
    return [docker, podman, skopeo]


@register.inclusion_tag("includes/client_commands.html")
def client_commands(action: str, reference: str = "", local: str = "my-image", label: str = "", username: str = ""):
    """`label`: what the switch is for, read by screen readers ("Pull command", by default)."""
    uid = f"cc{next(_ids)}"
    clients = clients_for(action, reference, local, username)
    return {
        "uid": uid, "action": action, "label": label or f"{action.capitalize()} command",
        "clients": [{"name": client.name, "id": f"{uid}-{client.name}",
                     "commands": [{"id": f"{uid}-{client.name}-{index}", "text": text, "html": command_html(text)}
                                  for index, text in enumerate(client.commands)],
                     "hint": _hint_html(client.hint), "hint_code": client.hint_code} for client in clients],
    }


@register.inclusion_tag("includes/client_commands.html")
def client_switch(action: str, label: str = ""):
    """The switch alone, with each client's hint folded away: for commands shown elsewhere on the page,
    one per client marked data-client="docker|podman|skopeo" inside the same `.client-switched` box
    (each row of the tag list, repositories/rows.py tag_row), which shows only the chosen client's."""
    uid = f"cc{next(_ids)}"
    return {
        "uid": uid, "action": action, "label": label or f"{action.capitalize()} commands", "switch_only": True,
        "clients": [{"name": client.name, "id": f"{uid}-{client.name}", "commands": [],
                     "hint": _hint_html(client.hint), "hint_code": client.hint_code}
                    for client in clients_for(action, "<namespace>/<repository>")],
    }


def command_html(text: str) -> SafeString:
    """The command as HTML, each long option a box that moves to the next line whole when the command
    wraps (`--tls-verify=false` was cut at its hyphens)."""
    words = (f'<span class="opt">{escape(word)}</span>' if word.startswith("--") else escape(word)
             for word in text.split(" "))
    return mark_safe(" ".join(words))  # noqa: S308 - every word escaped


def _hint_html(text: str) -> SafeString:
    """The hint as HTML: escaped, `backticked` words as <code>."""
    parts = escape(text).split("`")
    return mark_safe("".join(f"<code>{part}</code>" if index % 2 else part  # noqa: S308 - escaped above
                             for index, part in enumerate(parts)))
