"""Encrypt the existing rows (lib/crypto.py): build sources' webhook secrets and deploy keys, build rules' secrets.

Legacy plaintext values become `enc:v1:<token>`; values already encrypted are left. Reversible: going
back writes them in clear again, before 0002 gives the columns their old types back.
"""

from django.db import migrations

import lib.fields

FIELDS = {"BuildSource": ["webhook_secret", "deploy_private_key"], "BuildRule": ["secrets"]}


def encrypt(apps, schema_editor):
    lib.fields.encrypt_columns(apps, schema_editor, "builds", FIELDS)


def decrypt(apps, schema_editor):
    lib.fields.decrypt_columns(apps, schema_editor, "builds", FIELDS)


class Migration(migrations.Migration):

    dependencies = [
        ("builds", "0002_encrypt_secrets"),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt),
    ]
