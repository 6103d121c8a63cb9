"""Backups: consistent snapshots of every store, in one age-encrypted archive with a
manifest, copied to local and S3 targets, pruned by generations, verified by a test
restore, restored whole. See docs/backup-restore.md."""
