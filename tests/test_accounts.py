import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_local_sign_up_signs_the_new_user_in(client):
    response = client.post(
        reverse("account_signup"),
        {
            "username": "ada",
            "email": "ada@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    ada = User.objects.get(username="ada")
    assert client.session["_auth_user_id"] == str(ada.pk)


def test_sign_up_errors_are_shown_beside_the_field_and_keep_the_input(client):
    UserFactory(username="taken")
    response = client.post(
        reverse("account_signup"),
        {"username": "taken", "email": "new@example.com", "password1": PASSWORD, "password2": "x"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "username" in form.errors and "password2" in form.errors
    assert 'value="new@example.com"' in response.content.decode()


def test_local_sign_in_and_sign_out(client):
    user = UserFactory(username="grace")
    response = client.post(reverse("account_login"), {"login": "grace", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)

    page = client.get(reverse("home")).content.decode()
    assert "grace" in page and "Sign out" in page

    client.post(reverse("account_logout"))
    assert "_auth_user_id" not in client.session


def test_wrong_password_is_refused_with_a_message(client):
    UserFactory(username="grace")
    response = client.post(reverse("account_login"), {"login": "grace", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert response.context["form"].non_field_errors()


def test_sign_in_page_offers_github_only_when_configured(client, settings):
    assert "Sign in with GitHub" not in client.get(reverse("account_login")).content.decode()

    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {"APP": {"client_id": "id", "secret": "secret"}, "SCOPE": ["read:user"]}
    }
    assert "Sign in with GitHub" in client.get(reverse("account_login")).content.decode()


def test_logout_needs_a_post(client, user):
    client.force_login(user)
    response = client.get(reverse("account_logout"))
    assert response.status_code == 200  # a confirmation page, not a sign-out
    assert client.session["_auth_user_id"] == str(user.pk)


def test_profile_page_shows_the_user(client):
    UserFactory(username="linus", display_name="Linus T", bio="I write kernels.")
    page = client.get("/u/linus/").content.decode()
    assert "Linus T" in page and "I write kernels." in page
    assert "<title>Linus T · PAW Hub</title>" in page


def test_inactive_users_have_no_public_profile(client):
    UserFactory(username="banned", is_active=False)
    assert client.get("/u/banned/").status_code == 404


def test_settings_page_saves_the_profile(client, user):
    client.force_login(user)
    response = client.post(
        reverse("account_settings"), {"display_name": "New Name", "bio": "Hello"}, follow=True
    )
    assert response.status_code == 200
    assert "Your settings were saved." in response.content.decode()
    user.refresh_from_db()
    assert (user.display_name, user.bio) == ("New Name", "Hello")


def test_the_settings_form_cannot_change_the_email(client, user):
    """Finding 11: the email changed with a plain post, no password, no check."""
    before = user.email
    client.force_login(user)
    client.post(
        reverse("account_settings"),
        {"display_name": "", "bio": "", "email": "attacker@example.com"},
    )
    user.refresh_from_db()
    assert user.email == before


def test_changing_the_email_asks_for_the_password_then_a_confirmation(client, user):
    from allauth.account.models import EmailAddress
    from django.core import mail

    before = user.email  # as signing up records it
    EmailAddress.objects.create(user=user, email=before, primary=True, verified=True)
    client.force_login(user)  # a session, but no fresh password entry
    response = client.post(reverse("account_email"), {"action_add": "", "email": "new@example.com"})
    assert response.status_code == 302
    assert reverse("account_reauthenticate") in response["Location"]
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302
    response = client.post(reverse("account_email"), {"action_add": "", "email": "new@example.com"})
    assert response.status_code == 302, response.content.decode()[:500]
    user.refresh_from_db()
    assert user.email == before  # not until the new address is confirmed
    assert [m.to for m in mail.outbox] == [["new@example.com"]]


def test_reserved_names_cannot_be_usernames(client):
    response = client.post(
        reverse("account_signup"),
        {"username": "compile", "email": "", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert not User.objects.filter(username="compile").exists()


def test_sign_in_options_cost_no_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        client.get(reverse("home"))
