"""hub.urls as a site with single sign-on configured serves it (hub.urls drops the pages at import time
when HUB_OIDC_PROVIDERS is empty, as it is for the test process)."""

from django.urls import URLPattern

from hub import urls as hub_urls
from hub.views import not_found

urlpatterns = [pattern for pattern in hub_urls.urlpatterns
               if not (isinstance(pattern, URLPattern) and pattern.callback is not_found)]
handler404 = hub_urls.handler404
handler500 = hub_urls.handler500
