"""Run in the provider's own process (its settings): `python -m tests.e2e.idp.provision '<json>'` creates its
tables, then the OAuth client {"client": {"id", "secret", "redirect_uri"}} and the people
{"users": [{"username", "password", "email", "verified"}]} it is given."""

import json
import os
import sys

import django


def main(spec: dict) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.idp.settings")
    django.setup()
    from allauth.account.models import EmailAddress
    from allauth.idp.oidc.models import Client
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if client := spec.get("client"):
        row = Client(id=client["id"], name="Wharf", type=Client.Type.CONFIDENTIAL, skip_consent=True)
        row.set_secret(client["secret"])
        row.set_scopes(["openid", "profile", "email"])
        row.set_redirect_uris([client["redirect_uri"]])
        row.save()
    for person in spec.get("users", []):
        user = get_user_model().objects.create_user(person["username"], person["email"], person["password"])
        EmailAddress.objects.create(user=user, email=person["email"], verified=person.get("verified", True),
                                    primary=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
