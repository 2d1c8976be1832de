"""factory_boy factories. Names are unique per call so tests can share a live database."""

import uuid

import factory

from accounts.models import Namespace, Organization, Team, User
from accounts.services import organization_create
from repositories.models import Repository


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.LazyFunction(lambda: unique_name("user"))
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_organization(owner: User, name: str | None = None) -> Organization:
    return organization_create(name=name or unique_name("org"), owner=owner)


class RepositoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Repository

    namespace = factory.LazyFunction(lambda: Namespace.objects.get(user=UserFactory()))
    name = factory.LazyFunction(lambda: unique_name("repo"))
    is_private = False


def library_namespace() -> Namespace:
    return Namespace.objects.get(name="library")


def team(organization: Organization, name: str | None = None, **kwargs) -> Team:
    return Team.objects.create(organization=organization, name=name or unique_name("team")[:30], **kwargs)
