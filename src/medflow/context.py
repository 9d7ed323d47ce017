"""Who runs a command or query, for which clinic, and why. Free of Django."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from medflow.access.permissions import allowed_roles, allows
from medflow.errors import PermissionDenied


@dataclass(frozen=True)
class Context:
    """The caller of a command or query, carried into every event's metadata."""

    user_id: int | None
    username: str = ""
    role: str = ""
    clinic_ids: frozenset[UUID] = frozenset()
    correlation_id: UUID = field(default_factory=uuid4)
    causation_id: UUID | None = None
    request_id: str | None = None
    client_ip: str | None = None
    reason: str | None = None
    # When the fact happened in the world, for records entered after the fact (imports,
    # migrations); the timeline orders by it.
    effective_time: datetime | None = None
    # Patients whose data this request read: (patient id, clinic id, how). Written to the access
    # log at the end of the request; None where nothing is audited (MedFlow itself).
    reads: list | None = field(default=None, compare=False, repr=False)
    # Patients the caller may read outside their clinics by an unexpired break-glass grant
    # (filled on reads only, by medflow.access.request_context.context_for).
    break_glass: frozenset[UUID] = frozenset()
    # Extra metadata merged into every event's metadata (e.g. the legacy row a migration read).
    extra: dict[str, Any] | None = field(default=None, compare=False)

    def note_read(self, patient_id: UUID, clinic_id: UUID | None) -> None:
        """Remember that this request read a patient's data (for the access log)."""
        if self.reads is not None:
            by_break_glass = patient_id in self.break_glass and clinic_id not in self.clinic_ids
            entry = (patient_id, clinic_id, by_break_glass)
            # One access-log entry per patient and request, however many queries touched them.
            if entry not in self.reads:
                self.reads.append(entry)

    def metadata(self, command: str) -> dict[str, Any]:
        """Return the metadata recorded on every event this context's command produces."""
        data: dict[str, Any] = {
            "user_id": self.user_id,
            "username": self.username,
            "role": self.role,
            "correlation_id": str(self.correlation_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "command": command,
        }
        if self.request_id:
            data["request_id"] = self.request_id
        if self.client_ip:
            data["client_ip"] = self.client_ip
        if self.reason:
            data["reason"] = self.reason
        if self.effective_time:
            data["effective_time"] = self.effective_time.isoformat()
        if self.extra:
            data.update(self.extra)
        return data

    def with_reason(self, reason: str | None) -> "Context":
        """Return a copy of this context that records `reason`."""
        return replace(self, reason=reason) if reason else self


def system_context(reason: str | None = None) -> Context:
    """Return the context of MedFlow itself (migrations, demo data, process managers)."""
    return Context(user_id=None, username="system", role="system", reason=reason)


def require_role(ctx: Context, *roles: str) -> None:
    """Refuse the command unless the caller has one of `roles` (MedFlow itself always may)."""
    if ctx.role != "system" and ctx.role not in roles:
        allowed = " or ".join(roles)
        raise PermissionDenied(f"only a {allowed} may do this (you are {ctx.role or 'no role'})",
                               field="role")


def require_permission(ctx: Context, name: str) -> None:
    """Refuse the command or query `name` unless the permission table allows the caller's role.

    The table is medflow.access.permissions (MedFlow itself, role "system", always may).
    """
    if not allows(ctx.role, name):
        allowed = " or ".join(sorted(allowed_roles(name)))
        raise PermissionDenied(
            f"{name}: only a {allowed} may do this (you are {ctx.role or 'no role'})", field="role"
        )


def caused_by(ctx: Context, event_id: UUID, metadata: dict[str, Any]) -> Context:
    """Return the context of a command that a process manager runs in reaction to an event."""
    correlation = metadata.get("correlation_id")
    return replace(
        ctx,
        causation_id=event_id,
        correlation_id=UUID(correlation) if correlation else ctx.correlation_id,
    )
