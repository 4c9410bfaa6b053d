"""A "custom" database backend as a project might have one: a subclass of a Django backend."""
from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    display_name = "custom SQLite"
