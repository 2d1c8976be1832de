"""Encrypt at rest (lib/crypto.py): build sources' webhook secrets and deploy keys, build rules' secrets.

The columns become text; 0003 encrypts the rows. Two migrations, so that on PostgreSQL the rows are
rewritten and the columns altered in different transactions (going back, in that order too).
"""

from django.db import migrations

import lib.fields


class Migration(migrations.Migration):

    dependencies = [
        ("builds", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="buildrule",
            name="secrets",
            field=lib.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="buildsource",
            name="deploy_private_key",
            field=lib.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="buildsource",
            name="webhook_secret",
            field=lib.fields.EncryptedTextField(blank=True, max_length=200),
        ),
    ]
