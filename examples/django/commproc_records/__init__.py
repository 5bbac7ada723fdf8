"""commproc's records in the Django admin, and management commands that run commproc."""
