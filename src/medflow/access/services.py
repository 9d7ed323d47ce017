"""Application services of the access context."""

from uuid import UUID, uuid4

from django.contrib.auth import get_user_model

from medflow.access.domain import Clinic
from medflow.access.models import ClinicReadModel
from medflow.context import Context
from medflow.errors import Conflict, NotFound
from medflow.eventstore.commands import CommandResult, execute


def create_clinic(ctx: Context, name: str, code: str, clinic_id: UUID | None = None) -> CommandResult:
    """Open a clinic with a unique code."""
    if ClinicReadModel.objects.filter(code=code.strip()).exists():
        raise Conflict(f"clinic code {code} is taken", field="code", code="clinic_code_taken")
    clinic_id = clinic_id or uuid4()
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.create(name, code),
        command="CreateClinic", create=True, clinic_id=clinic_id,
    )


def clinic_by_code(code: str) -> ClinicReadModel:
    """Return the clinic with this code."""
    clinic = ClinicReadModel.objects.filter(code=code).first()
    if clinic is None:
        raise NotFound(f"no clinic with code {code!r}", field="clinic")
    return clinic


def grant_role(ctx: Context, clinic_id: UUID, username: str, role: str) -> CommandResult:
    """Give a user a role in a clinic."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.grant(user.pk, username, role),
        command="GrantStaffRole",
    )


def revoke_role(ctx: Context, clinic_id: UUID, username: str) -> CommandResult:
    """Take a user's role in a clinic away."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return execute(
        ctx, Clinic, clinic_id, lambda clinic: clinic.revoke(user.pk), command="RevokeStaffRole"
    )
