"""Labs bounded context: lab orders and results."""
