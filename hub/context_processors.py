from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {
        "SITE_NAME": settings.HUB_SITE_NAME,
        "REGISTRY_HOST": settings.HUB_PUBLIC_HOST,
        "PUBLIC_URL": settings.HUB_PUBLIC_URL,
        "SIGNUP_OPEN": settings.HUB_SIGNUP_OPEN,  # closed: no "Sign up" links (the page would say it is closed)
    }
