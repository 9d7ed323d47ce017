"""Who may run which command or query: the one permission table of MedFlow. No Django here.

Every application service checks its command with ``require_permission(ctx, "<name>")``
(medflow.context); interfaces may ask ``allows(role, name)`` to show or hide an action. MedFlow
itself (role "system": migrations, demo data, process managers) may do everything. A role is held
per clinic (see medflow.access.request_context), and every rule here is applied on top of the
clinic scope: a record of a clinic the caller does not work in answers 404, never 403.

    permission                        doctor  nurse  receptionist  admin
    patients.register                   yes    yes       yes        yes
    patients.search / read / history    yes    yes       yes        yes
    patients.update / archive           yes    yes       yes        yes
    patients.forget                      -      -         -         yes
    timeline.read                       yes    yes      yes (1)     yes
    audit.read_access_log                -      -         -         yes
    access.break_glass                  yes    yes        -          -
    clinical.read                       yes    yes        -         yes
    clinical.start/end_encounter        yes    yes        -          -
    clinical.record_vital_signs         yes    yes        -          -
    clinical.draft_note                 yes    yes        -          -
    clinical.revise_note                yes   yes (2)     -          -
    clinical.add/resolve_diagnosis,
      change_diagnosis_status           yes     -         -          -
    clinical.record_allergy             yes    yes        -          -
    clinical.resolve/refute_allergy     yes     -         -          -
    clinical.prescribe, approve_prescription (3),
      discontinue_medication            yes     -         -          -
    clinical.sign_note / amend_note     yes     -         -          -
    labs.read                           yes    yes       yes        yes
    labs.place_order / cancel_order     yes     -         -          -
    labs.record/correct/cancel_result   yes    yes        -          -
    scheduling.read                     yes    yes       yes        yes
    scheduling.schedule / reschedule /
      cancel / check_in / mark_no_show  yes    yes       yes        yes
    scheduling.complete                 yes    yes        -          -
    work.read_tasks / read_alerts       yes    yes       yes        yes
    work.assign_task                    yes    yes       yes        yes
    work.complete/reassign_task (4)     yes    yes        -         yes
    work.raise_alert / acknowledge      yes    yes        -          -

(1) receptionists see only the non-clinical entries (registration, appointments);
(2) a nurse revises only the drafts she wrote; (3) a doctor other than the prescriber;
(4) besides these roles, the task's assignee may, whatever their role.

Print it with ``medflow access permissions``. tests/e2e/test_authz_matrix.py calls every API
route as every role and checks the answers against this table.
"""

from dataclasses import dataclass

DOCTOR, NURSE, RECEPTIONIST, ADMIN = "doctor", "nurse", "receptionist", "admin"
ROLES = (DOCTOR, NURSE, RECEPTIONIST, ADMIN)
SYSTEM = "system"

EVERYONE = frozenset(ROLES)
CLINICIANS = frozenset({DOCTOR, NURSE})
CLINICAL_READERS = frozenset({DOCTOR, NURSE, ADMIN})
DOCTORS = frozenset({DOCTOR})
ADMINS = frozenset({ADMIN})
SUPERVISORS = frozenset({DOCTOR, NURSE, ADMIN})


@dataclass(frozen=True)
class Permission:
    """The roles allowed to run one command or query, and what the table cannot say alone."""

    roles: frozenset[str]
    summary: str
    condition: str = ""


PERMISSIONS: dict[str, Permission] = {
    # patients
    "patients.register": Permission(EVERYONE, "register a patient"),
    "patients.search": Permission(EVERYONE, "search patients"),
    "patients.read": Permission(EVERYONE, "read a patient, now or in the past"),
    "patients.history": Permission(EVERYONE, "read a patient's events"),
    "patients.update": Permission(EVERYONE, "change demographics, contact, address"),
    "patients.archive": Permission(EVERYONE, "close a patient's record"),
    "patients.forget": Permission(ADMINS, "erase a patient's personal data for good"),
    "timeline.read": Permission(EVERYONE, "read a patient's timeline",
                                "receptionists see registration and appointments only"),
    # access and audit
    "audit.read_access_log": Permission(ADMINS, "read who accessed a patient's data"),
    "access.break_glass": Permission(CLINICIANS, "open a patient of another clinic, read only,"
                                                 " for a limited time"),
    # clinical
    "clinical.read": Permission(CLINICAL_READERS, "read encounters, vitals, diagnoses,"
                                                  " allergies, prescriptions, notes, chart"),
    "clinical.start_encounter": Permission(CLINICIANS, "start an encounter"),
    "clinical.end_encounter": Permission(CLINICIANS, "end an encounter"),
    "clinical.record_vital_signs": Permission(CLINICIANS, "record vital signs"),
    "clinical.add_diagnosis": Permission(DOCTORS, "add a diagnosis"),
    "clinical.change_diagnosis_status": Permission(DOCTORS, "change a diagnosis' status"),
    "clinical.resolve_diagnosis": Permission(DOCTORS, "resolve a diagnosis"),
    # Nurses take allergy histories at intake; taking one off the list is a doctor's call.
    "clinical.record_allergy": Permission(CLINICIANS, "record an allergy or intolerance"),
    "clinical.resolve_allergy": Permission(DOCTORS, "mark an allergy resolved"),
    "clinical.refute_allergy": Permission(DOCTORS, "mark an allergy refuted or entered in error"),
    "clinical.prescribe": Permission(DOCTORS, "prescribe a medication"),
    "clinical.approve_prescription": Permission(DOCTORS, "approve a pending prescription",
                                                "a doctor other than the prescriber"),
    "clinical.discontinue_medication": Permission(DOCTORS, "stop a medication"),
    "clinical.draft_note": Permission(CLINICIANS, "draft a clinical note"),
    "clinical.revise_note": Permission(CLINICIANS, "revise a draft note",
                                       "a nurse revises only her own drafts"),
    "clinical.sign_note": Permission(DOCTORS, "sign a note"),
    "clinical.amend_note": Permission(DOCTORS, "amend a signed note"),
    # labs
    "labs.read": Permission(EVERYONE, "read lab orders and results"),
    "labs.place_order": Permission(DOCTORS, "order lab tests"),
    "labs.cancel_order": Permission(DOCTORS, "withdraw a lab order"),
    "labs.record_result": Permission(CLINICIANS, "record a lab result"),
    "labs.correct_result": Permission(CLINICIANS, "correct a lab result"),
    "labs.cancel_result": Permission(CLINICIANS, "withdraw a lab result"),
    # scheduling
    "scheduling.read": Permission(EVERYONE, "read appointments and a provider's day"),
    "scheduling.schedule": Permission(EVERYONE, "book an appointment"),
    "scheduling.reschedule": Permission(EVERYONE, "move an appointment"),
    "scheduling.cancel": Permission(EVERYONE, "cancel an appointment"),
    "scheduling.check_in": Permission(EVERYONE, "check a patient in"),
    "scheduling.mark_no_show": Permission(EVERYONE, "mark an appointment as no-show"),
    "scheduling.complete": Permission(CLINICIANS, "complete a visit"),
    # work
    "work.read_tasks": Permission(EVERYONE, "read tasks"),
    "work.assign_task": Permission(EVERYONE, "give someone a task"),
    "work.complete_task": Permission(SUPERVISORS, "complete a task", "and the task's assignee"),
    "work.reassign_task": Permission(SUPERVISORS, "hand a task on", "and the task's assignee"),
    "work.read_alerts": Permission(EVERYONE, "read alerts"),
    "work.raise_alert": Permission(CLINICIANS, "raise an alert"),
    "work.acknowledge_alert": Permission(CLINICIANS, "acknowledge an alert"),
}


def permission(name: str) -> Permission:
    """Return the permission called `name`; an unknown name is a programming error."""
    try:
        return PERMISSIONS[name]
    except KeyError:
        raise LookupError(f"no permission {name!r} in medflow.access.permissions") from None


def allowed_roles(name: str) -> frozenset[str]:
    """Return the staff roles that may run the command or query `name`."""
    return permission(name).roles


def allows(role: str, name: str) -> bool:
    """Tell whether `role` may run the command or query `name` (MedFlow itself always may)."""
    return role == SYSTEM or role in permission(name).roles


def render_matrix() -> str:
    """Return the permission table as aligned text, one line per permission."""
    width = max(len(name) for name in PERMISSIONS)
    head = ("permission".ljust(width) + "  " + "  ".join(role.ljust(12) for role in ROLES)).rstrip()
    lines = [head, "-" * len(head)]
    for name, perm in PERMISSIONS.items():
        cells = "  ".join(("yes" if role in perm.roles else "-").ljust(12) for role in ROLES)
        line = f"{name.ljust(width)}  {cells}".rstrip()
        if perm.condition:
            line += f"   ({perm.condition})"
        lines.append(line)
    return "\n".join(lines)
