from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0002_pending_pull_count'),
    ]

    operations = [
        migrations.AddField(
            model_name='blobupload',
            name='store_state',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
