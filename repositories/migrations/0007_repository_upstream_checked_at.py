from django.db import migrations, models


def from_updated_at(apps, schema_editor):
    """Mirrored repositories recorded their last upstream check in updated_at until now."""
    Repository = apps.get_model("repositories", "Repository")
    Repository.objects.filter(namespace__kind="mirror").update(upstream_checked_at=models.F("updated_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0009_namespace_kind_mirror"),
        ("repositories", "0006_immutable_tags"),
    ]

    operations = [
        migrations.AddField(
            model_name="repository",
            name="upstream_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(from_updated_at, migrations.RunPython.noop),
    ]
