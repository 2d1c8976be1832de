from django.db import migrations


def create_library(apps, schema_editor):
    Namespace = apps.get_model("accounts", "Namespace")
    Namespace.objects.get_or_create(name="library", defaults={"kind": "library"})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_library, migrations.RunPython.noop)]
