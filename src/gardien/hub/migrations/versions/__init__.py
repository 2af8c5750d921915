"""The hub's schema versions, oldest first (``v0001_reports.py``, ``v0002_users.py``...)."""
