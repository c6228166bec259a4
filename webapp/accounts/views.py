"""Authentication endpoints (session for the browser, token for scripts) and departments."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from webapp.accounts.serializers import CredentialsSerializer, DepartmentSerializer, MeSerializer


class BadCredentials(APIException):
    # 400 like DRF's own token view: these endpoints take credentials, they do not require them.
    status_code = 400
    default_detail = "wrong username or password"
    default_code = "bad_credentials"


def _authenticate(request):
    credentials = CredentialsSerializer(data=request.data)
    credentials.is_valid(raise_exception=True)
    user = authenticate(request._request, **credentials.validated_data)
    if user is None or not user.is_active:
        raise BadCredentials()
    return user


class CsrfView(APIView):
    """Sets the `csrftoken` cookie the browser sends back as `X-CSRFToken` on unsafe requests."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={204: None})
    @method_decorator(ensure_csrf_cookie)
    def get(self, request):
        return Response(status=status.HTTP_204_NO_CONTENT)


@method_decorator(csrf_protect, name="dispatch")
class LoginView(APIView):
    """Session login for the browser (CSRF-checked: call /api/auth/csrf/ first)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(request=CredentialsSerializer, responses=MeSerializer)
    def post(self, request):
        user = _authenticate(request)
        login(request._request, user)
        return Response(MeSerializer(user).data)


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class TokenView(APIView):
    """`POST {"username","password"}` → `{"token"}` for scripts: send it as `Authorization: Token <token>`."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=CredentialsSerializer,
        responses=inline_serializer("TokenResponse", {"token": serializers.CharField()}),
    )
    def post(self, request):
        user = _authenticate(request)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class DepartmentList(generics.ListAPIView):
    """The departments the user belongs to (every department for admins)."""

    serializer_class = DepartmentSerializer

    def get_queryset(self):
        return self.request.user.visible_departments()
