"""The audit log's Activity tab in a real browser: an organization owner sees a push made with skopeo,
filters the log and downloads its CSV. Screenshots at 1280 and 390 px go to
test-artifacts/screenshots/hub-activity-*.png."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import Page, expect

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.e2e.test_hub_browser import log_in, shoot  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
pytest_plugins = ["tests.e2e.images"]


def test_an_owner_reads_filters_and_exports_the_organizations_activity(
        page: Page, live_hub, live_user, committed, test_images, screenshots_dir, tmp_path):
    from tests.factories import make_organization

    owner = live_user()
    with committed():
        organization = make_organization(owner)
    clients = ContainerClients(tmp_path / "clients", [live_hub.host])
    clients.skopeo_push(test_images.unique(), f"{live_hub.host}/{organization.name}/api:v1",
                        creds=(owner.username, PASSWORD))

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/orgs/{organization.name}")
    page.get_by_role("link", name="Activity", exact=True).click()
    table = page.locator("table.activity-table")
    expect(table).to_contain_text("Tag pushed")
    expect(table).to_contain_text(f"{organization.name}/api:v1")
    expect(table).to_contain_text("Organization created")
    shoot(page, screenshots_dir, "activity")

    page.get_by_label("Action").select_option("repo.tag.push")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.activity-table tbody tr")).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0][:2] == ["timestamp", "action"]
    assert [row[1] for row in rows[1:]] == ["repo.tag.push"]
    assert rows[1][4] == owner.username
