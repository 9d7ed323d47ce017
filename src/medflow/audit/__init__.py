"""Audit of reads: an append-only, hash-chained access log of every read of patient data."""
