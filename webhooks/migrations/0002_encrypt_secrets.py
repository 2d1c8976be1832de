"""Encrypt at rest (lib/crypto.py): webhooks' secrets and custom headers, and the headers kept per delivery.

The columns become text; 0003 encrypts the rows. Two migrations, so that on PostgreSQL the rows are
rewritten and the columns altered in different transactions (going back, in that order too).
"""

from django.db import migrations

import lib.fields


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="request_headers",
            field=lib.fields.EncryptedJSONField(default=dict),
        ),
        migrations.AlterField(
            model_name="webhook",
            name="headers",
            field=lib.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="webhook",
            name="secret",
            field=lib.fields.EncryptedTextField(blank=True, max_length=255),
        ),
    ]
