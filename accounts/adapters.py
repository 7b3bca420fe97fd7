from allauth.account.adapter import DefaultAccountAdapter, get_adapter
from allauth.account.utils import filter_users_by_email, user_email, user_username
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.contrib.auth import get_user_model

from paw_site.names import RESERVED_NAMES


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return settings.ACCOUNT_ALLOW_SIGNUP


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def populate_user(self, request, sociallogin, data):
        """Map a GitHub profile onto a new user.

        The GitHub login becomes the username unless someone already holds
        it, in which case a free variant is generated: a local account is
        never reused for a GitHub identity. An email already used by another
        account is not copied either, for the same reason.
        """
        user = super().populate_user(request, sociallogin, data)
        users = get_user_model().objects
        login = user_username(user) or "user"
        if login.lower() in RESERVED_NAMES or users.filter(username__iexact=login).exists():
            user_username(user, get_adapter(request).generate_unique_username([login, "user"]))
        email = user_email(user)
        # Held by someone as their address or as one of their allauth addresses.
        if email and filter_users_by_email(email):
            user_email(user, "")
        # allauth decides on auto sign-up from the addresses GitHub listed, not
        # from user.email: a taken one left there sends the new user to a
        # second sign-up form pre-filled with someone else's address.
        sociallogin.email_addresses = [
            address
            for address in sociallogin.email_addresses
            if not filter_users_by_email(address.email)
        ]
        extra = sociallogin.account.extra_data
        user.display_name = (extra.get("name") or "")[:100]
        user.avatar_url = extra.get("avatar_url") or ""
        user.github_url = extra.get("html_url") or ""
        return user
