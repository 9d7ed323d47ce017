"""Event store core: append, load, read the global log, snapshots. Knows nothing about healthcare."""
