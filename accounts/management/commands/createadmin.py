"""Create (or update) a staff superuser without prompts, from environment variables."""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.names import validate_namespace_name


class Command(BaseCommand):
    help = "Create an admin from HUB_ADMIN_USERNAME, HUB_ADMIN_EMAIL and HUB_ADMIN_PASSWORD."

    def handle(self, *args, **options) -> None:
        username = os.environ.get("HUB_ADMIN_USERNAME", "").strip().lower()
        email = os.environ.get("HUB_ADMIN_EMAIL", "").strip()
        password = os.environ.get("HUB_ADMIN_PASSWORD", "")
        if not username or not password:
            raise CommandError("Set HUB_ADMIN_USERNAME and HUB_ADMIN_PASSWORD (and HUB_ADMIN_EMAIL).")
        try:
            validate_namespace_name(username)
        except ValidationError as exc:
            raise CommandError(f"HUB_ADMIN_USERNAME: {' '.join(exc.messages)}") from None
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, email=email, password=password)
            self.stdout.write(f"Created admin {username}.")
        else:
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            self.stdout.write(f"Updated admin {username}.")
