"""The docker / podman / skopeo command switch: flags and hints for a plain-HTTP hub, none over HTTPS, and
markup that switches with CSS alone."""

from django.template import Context, Template

from repositories.templatetags.client_commands import clients_for


def commands(action, reference="alice/app", **kwargs) -> dict[str, list[str]]:
    return {client.name: client.commands for client in clients_for(action, reference, **kwargs)}


def test_a_plain_http_hub_gets_tls_verify_false_for_podman_and_skopeo(settings):
    settings.HUB_PUBLIC_URL, settings.HUB_PUBLIC_HOST = "http://hub.lan:8000", "hub.lan:8000"
    assert commands("pull") == {
        "docker": ["docker pull hub.lan:8000/alice/app"],
        "podman": ["podman pull --tls-verify=false hub.lan:8000/alice/app"],
        "skopeo": ["skopeo copy --src-tls-verify=false docker://hub.lan:8000/alice/app oci-archive:app.tar"],
    }


def test_an_https_hub_gets_no_tls_options_and_no_hints(settings):
    settings.HUB_PUBLIC_URL, settings.HUB_PUBLIC_HOST = "https://hub.example", "hub.example"
    clients = clients_for("push", "alice/app:v1")
    image = "hub.example/alice/app:v1"
    assert [client.commands for client in clients] == [
        ["docker login hub.example", f"docker tag my-image {image}", f"docker push {image}"],
        ["podman login hub.example", f"podman tag my-image {image}", f"podman push {image}"],
        ["skopeo login hub.example", f"skopeo copy oci-archive:my-image.tar docker://{image}"],
    ]
    assert all(client.hint == "" for client in clients)


def test_a_plain_http_hub_shows_docker_its_insecure_registries_setting(settings):
    settings.HUB_PUBLIC_URL, settings.HUB_PUBLIC_HOST = "http://hub.lan:8000", "hub.lan:8000"
    docker, podman, _ = clients_for("login")
    assert "/etc/docker/daemon.json" in docker.hint
    assert docker.hint_code == '{ "insecure-registries": ["hub.lan:8000"] }'
    assert podman.hint_code == '[[registry]]\nlocation = "hub.lan:8000"\ninsecure = true'


def test_login_with_a_user_name(settings):
    settings.HUB_PUBLIC_URL, settings.HUB_PUBLIC_HOST = "https://hub.example", "hub.example"
    assert commands("login", username="acme")["podman"] == ["podman login -u acme hub.example"]


def test_the_switch_is_radios_labels_and_panels_with_the_first_client_chosen(settings):
    settings.HUB_PUBLIC_URL, settings.HUB_PUBLIC_HOST = "http://hub.lan:8000", "hub.lan:8000"
    html = Template('{% load client_commands %}{% client_commands "pull" "alice/app:v1" %}').render(Context())
    assert html.count('class="clients-radio" type="radio"') == 3 and html.count(" checked>") == 1
    assert 'value="docker" checked><label class="clients-tab"' in html
    assert html.count('<div class="clients-panel"') == 3 and html.count("data-copy-target=") == 3
    assert "<code>--tls-verify=false</code>" in html  # the hint's code words are marked up, the rest escaped
