"""Web login: Django's LoginView, with the TOTP second factor of users who have one.

The password check goes through the configured backends (django-axes throttles it); a user with
a confirmed TOTP device must also give a valid one-time code, and a wrong code counts as a failed
login, as on the API's login (medflow.access.auth).
"""

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django_otp import login as otp_login
from django_otp import match_token, user_has_device


class LoginForm(AuthenticationForm):
    otp = forms.CharField(required=False, label="One-time code")

    error_messages = {
        **AuthenticationForm.error_messages,
        "otp_required": "Enter the one-time code from your authenticator app.",
    }

    def clean(self):
        cleaned = super().clean()
        self.otp_device = None
        user = self.get_user()
        if user is not None and user_has_device(user, confirmed=True):
            code = (cleaned.get("otp") or "").strip()
            device = match_token(user, code) if code else None
            if device is None:
                user_login_failed.send(sender=__name__, request=self.request,
                                       credentials={"username": cleaned.get("username")})
                self.user_cache = None
                raise forms.ValidationError(self.error_messages["otp_required"],
                                            code="otp_required")
            self.otp_device = device
        return cleaned


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        if form.otp_device is not None:
            otp_login(self.request, form.otp_device)
        return response
