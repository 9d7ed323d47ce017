"""Carry the clinic chosen in the web UI into every request as the X-Clinic-ID header."""

SESSION_KEY = "medflow_clinic_id"


class ActiveClinicMiddleware:
    """Set X-Clinic-ID from the session, so that context_for acts in the chosen clinic.

    A header the client sent itself (an API program) wins; the session only fills it in.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        clinic = session.get(SESSION_KEY) if session is not None else None
        if clinic and "HTTP_X_CLINIC_ID" not in request.META:
            request.META["HTTP_X_CLINIC_ID"] = clinic
        return self.get_response(request)
