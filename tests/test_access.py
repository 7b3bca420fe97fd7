"""Access matrix: every page so far, for anonymous, signed-in and staff users."""

import pytest

pytestmark = pytest.mark.django_db

SIGN_IN = "/accounts/login/"

# path -> expected status for (anonymous, user, staff); "login" = redirect to sign in
MATRIX = {
    "/": (200, 200, 200),
    "/accounts/login/": (200, 302, 302),
    "/accounts/signup/": (200, 302, 302),
    "/u/{username}/": (200, 200, 200),
    "/u/nobody-here/": (404, 404, 404),
    "/settings/": ("login", 200, 200),
    "/accounts/password/change/": ("login", 200, 200),
    "/admin/": ("admin-login", "admin-login", 200),
    "/no-such-page/": (404, 404, 404),
}


@pytest.fixture(params=["anonymous", "user", "staff"])
def who(request, client, user, staff):
    if request.param != "anonymous":
        client.force_login(user if request.param == "user" else staff)
    return request.param


@pytest.mark.parametrize("path", MATRIX)
def test_access_matrix(client, who, user, path):
    expected = MATRIX[path][["anonymous", "user", "staff"].index(who)]
    response = client.get(path.format(username=user.username))
    if expected == "login":
        assert response.status_code == 302
        assert response["Location"].startswith(SIGN_IN)
    elif expected == "admin-login":
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    else:
        assert response.status_code == expected


def test_error_pages_use_the_site_layout(client):
    page = client.get("/no-such-page/").content.decode()
    assert "Page not found" in page and "PAW Hub" in page


def test_every_htmx_request_carries_the_csrf_token(client):
    page = client.get("/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    assert "/static/js/htmx.min.js" in page
    assert "https://" not in page.split("<body")[0], "no CDN links in the head"


def test_static_files_are_served(client):
    # whitenoise serves vendored htmx and our stylesheet; no CDN anywhere.
    response = client.get("/static/js/htmx.min.js")
    assert response.status_code == 200
