"""What a build context may hold, checked before buildah sees it (no Django here).

buildah 1.28 follows symlinks on the host when they are used as a `RUN --mount` source (and in some
COPY paths), so a symlink `keys -> /srv/wharf/data/keys` in a Git source would read the hub's keys.
A build whose context holds a symlink that resolves outside the context (absolute, or `..` past its
root, directly or through other symlinks) is refused before buildah runs; the sandbox, which shows
buildah nothing of the host, is the second wall.

`base_images()` lists the images a Dockerfile starts from, so the worker can pull them (with the
build's registry token) before the build runs without network and without that token. `declared_args()`
lists the ARG names it declares, so only the built-in build args it asks for are passed (buildah warns
"one or more build args were not consumed" about the others).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

MAX_LINKS = 40
MAX_REPORTED = 5


class ContextRefused(Exception):
    pass


def _escapes(root: Path, link: Path) -> bool:
    """Whether resolving `link` (a path inside `root`), following symlinks as the kernel would but
    inside `root` only, ever leaves `root`."""
    pending = list(link.relative_to(root).parts)
    current: list[str] = []
    followed = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return True
            current.pop()
            continue
        candidate = root.joinpath(*current, part)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            current.append(part)  # missing: nothing more to follow
            continue
        if stat.S_ISLNK(mode):
            followed += 1
            if followed > MAX_LINKS:
                return True
            target = os.readlink(candidate)
            if os.path.isabs(target):
                return True
            pending = list(Path(target).parts) + pending
            continue
        current.append(part)
    return False


def escaping_symlinks(context: Path) -> list[str]:
    """The symlinks under `context` (relative paths) that resolve outside it."""
    context = Path(os.path.realpath(context))
    found = []
    for directory, dirs, files in os.walk(context):  # os.walk does not descend into symlinked directories
        for name in (*dirs, *files):
            path = Path(directory) / name
            if os.path.islink(path) and _escapes(context, path):
                found.append(str(path.relative_to(context)))
    return sorted(found)


def check_context(context: Path) -> None:
    found = escaping_symlinks(context)
    if found:
        shown = ", ".join(f"{name} -> {os.readlink(context / name)}" for name in found[:MAX_REPORTED])
        more = f" and {len(found) - MAX_REPORTED} more" if len(found) > MAX_REPORTED else ""
        raise ContextRefused(f"the build context holds symlinks that point outside it: {shown}{more} "
                             f"(make them relative and inside the context)")


# --- base images ----------------------------------------------------------------------------------------------

ARG_RE = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE)
FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
COPY_FROM_RE = re.compile(r"^\s*(?:COPY|ADD)\s.*?--from=(\S+)", re.IGNORECASE)
MOUNT_FROM_RE = re.compile(r"--mount=\S*?\bfrom=([^,\s]+)", re.IGNORECASE)
VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        if not current and raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    if current:
        lines.append(current)
    return lines


def _expand(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        if name in variables and variables[name] != "":
            return variables[name]
        return match.group(2) or ""

    return VARIABLE_RE.sub(replace, value).strip("\"'")


ARG_LINE_RE = re.compile(r"^\s*ARG\s+(.+)$", re.IGNORECASE)
ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def declared_args(dockerfile: str) -> set[str]:
    """The names every ARG instruction declares, before the first FROM (global) or in a stage, several
    per line too (`ARG A B=1`, `ARG MSG="two words"`)."""
    names: set[str] = set()
    for line in _logical_lines(dockerfile):
        found = ARG_LINE_RE.match(line)
        if not found:
            continue
        try:
            words = shlex.split(found.group(1), comments=False)
        except ValueError:  # an unbalanced quote: the names are still the words before each `=`
            words = found.group(1).split()
        for word in words:
            name = word.partition("=")[0]
            if ARG_NAME_RE.fullmatch(name):
                names.add(name)
    return names


def base_images(dockerfile: str, build_args: dict[str, str]) -> list[str]:
    """The images (not stages, not `scratch`) a Dockerfile's FROM, COPY --from and RUN --mount from= use."""
    global_args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    seen_from = False

    def add(reference: str) -> None:
        if reference and not reference.startswith("-") and reference.lower() != "scratch" \
                and reference.lower() not in stages and not reference.isdigit() and reference not in images:
            images.append(reference)

    for line in _logical_lines(dockerfile):
        arg = ARG_RE.match(line)
        if arg and not seen_from:
            name, default = arg.group(1), arg.group(2) or ""
            global_args[name] = build_args.get(name, _expand(default, {**global_args}))
            continue
        found = FROM_RE.match(line)
        if found:
            seen_from = True
            add(_expand(found.group(1), global_args))
            if found.group(2):
                stages.add(found.group(2).lower())
            continue
        for pattern in (COPY_FROM_RE, MOUNT_FROM_RE):
            for match in pattern.finditer(line):
                add(_expand(match.group(1), {**global_args, **build_args}))
    return images
