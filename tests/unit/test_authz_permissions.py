"""The permission table: lookups, require_permission, and agreement with the rules it names."""

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from medflow.access.domain import Role
from medflow.access.permissions import (
    PERMISSIONS,
    ROLES,
    allowed_roles,
    allows,
    render_matrix,
)
from medflow.context import Context, require_permission, system_context
from medflow.errors import PermissionDenied

SRC = Path(__file__).resolve().parents[2] / "src" / "medflow"


def test_roles_are_the_staff_roles():
    assert set(ROLES) == {r.value for r in Role}
    assert all(p.roles <= set(ROLES) and p.roles for p in PERMISSIONS.values())


def test_allows():
    assert allows("doctor", "clinical.prescribe")
    assert not allows("nurse", "clinical.prescribe")
    assert not allows("", "patients.read")
    assert allows("system", "patients.forget")
    with pytest.raises(LookupError, match=r"no permission 'clinical\.nope'"):
        allows("doctor", "clinical.nope")


def test_require_permission():
    nurse = Context(user_id=1, role="nurse")
    require_permission(nurse, "labs.record_result")
    require_permission(system_context(), "audit.read_access_log")
    with pytest.raises(PermissionDenied) as refused:
        require_permission(nurse, "labs.place_order")
    assert refused.value.code == "permission_denied" and refused.value.field == "role"
    assert "labs.place_order" in refused.value.message and "doctor" in refused.value.message


def test_every_permission_checked_in_the_code_is_in_the_table():
    used = set()
    for path in SRC.rglob("*.py"):
        used |= set(re.findall(r'require_permission\(\w+, "([\w.]+)"\)', path.read_text()))
    assert used, "no require_permission calls found"
    assert used <= set(PERMISSIONS), used - set(PERMISSIONS)
    # Every command permission the services enforce has its entry; no role rule is left behind.
    assert not [p for p in SRC.rglob("*.py") if "require_role(ctx" in p.read_text()
                and p.name in ("services.py", "api.py")]


def test_rules_kept_outside_the_services_agree_with_the_table():
    from medflow.clinical.queries import READERS
    from medflow.timeline.queries import CLINICAL_ROLES
    from medflow.work.services import SUPERVISING_ROLES

    assert set(READERS) == allowed_roles("clinical.read")
    assert CLINICAL_ROLES - {"system"} == allowed_roles("clinical.read")
    assert set(SUPERVISING_ROLES) == allowed_roles("work.complete_task")
    assert allowed_roles("work.complete_task") == allowed_roles("work.reassign_task")


def test_matrix_text_and_cli():
    text = render_matrix()
    for name, perm in PERMISSIONS.items():
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert line.split()[1:5] == ["yes" if r in perm.roles else "-" for r in ROLES]
    out = io.StringIO()
    call_command("access", "permissions", stdout=out)
    assert out.getvalue().strip() == text
    out = io.StringIO()
    call_command("access", "permissions", "--json", stdout=out)
    assert '"patients.forget"' in out.getvalue() and '"admin"' in out.getvalue()
