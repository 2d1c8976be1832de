"""Encrypt the existing rows (lib/crypto.py): webhooks' secrets and custom headers, and the headers kept per delivery.

Legacy plaintext values become `enc:v1:<token>`; values already encrypted are left. Reversible: going
back writes them in clear again, before 0002 gives the columns their old types back.
"""

from django.db import migrations

import lib.fields

FIELDS = {"Webhook": ["secret", "headers"], "Delivery": ["request_headers"]}


def encrypt(apps, schema_editor):
    lib.fields.encrypt_columns(apps, schema_editor, "webhooks", FIELDS)


def decrypt(apps, schema_editor):
    lib.fields.decrypt_columns(apps, schema_editor, "webhooks", FIELDS)


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0002_encrypt_secrets"),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt),
    ]
