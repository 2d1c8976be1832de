"""Encrypt every stored secret again with the current key: run it after adding a key to HUB_ENCRYPTION_KEY."""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from lib.fields import encrypted_fields, reencrypt_column


class Command(BaseCommand):
    help = ("Re-encrypt the stored secrets with the first key of HUB_ENCRYPTION_KEY (or keys/encryption.key), "
            "so that the retired keys can be removed.")

    def handle(self, *args, **options) -> None:
        for model, name in encrypted_fields():
            with transaction.atomic():
                count = reencrypt_column(model, name, connection)
            self.stdout.write(f"{model._meta.label}.{name}: {count} re-encrypted")
