"""Operations: health, metrics, backups, partitions, slow-query log."""
