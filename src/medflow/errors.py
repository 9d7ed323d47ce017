"""One error tree for the whole system; interfaces map each class to an HTTP status or CLI error.

Free of Django so that domain code can raise these.
"""


class MedflowError(Exception):
    """Base of every error MedFlow raises on purpose; carries a stable code and the field at fault."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidInput(MedflowError):
    """The request or command is malformed (a value of the wrong kind or out of range)."""

    code = "invalid_input"


class RuleViolated(MedflowError):
    """A domain invariant refuses the command (for example, a change to an archived patient)."""

    code = "rule_violated"


class NotFound(MedflowError):
    """No such aggregate, or one the caller may not see."""

    code = "not_found"


class Gone(MedflowError):
    """The record existed but its personal data was forgotten for good."""

    code = "gone"


class Conflict(MedflowError):
    """The command clashes with stored state (a duplicate MRN, say)."""

    code = "conflict"


class VersionConflict(Conflict):
    """The stream moved on since the caller read it (optimistic concurrency)."""

    code = "version_conflict"

    def __init__(self, message: str, *, expected: int | None = None, actual: int | None = None):
        super().__init__(message, field="version")
        self.expected = expected
        self.actual = actual


class PreconditionRequired(MedflowError):
    """A write needs the version the caller last saw (If-Match) and none was given."""

    code = "precondition_required"


class PermissionDenied(MedflowError):
    """The caller's role may not run this command or query."""

    code = "permission_denied"
