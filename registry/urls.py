from django.urls import path

from registry import tokens

urlpatterns = [
    path("token", tokens.token_view, name="registry-token"),
]
