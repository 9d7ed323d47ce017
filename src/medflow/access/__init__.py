"""Access bounded context: clinics (tenants), staff roles, API tokens, request context."""
