"""Legacy context: the old CRUD system's tables and the migration of their rows into events."""
