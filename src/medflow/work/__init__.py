"""Work bounded context: tasks and alerts for staff."""
