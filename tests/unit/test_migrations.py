"""The committed migrations match the models: a model change without its migration fails here."""
import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_have_no_uncommitted_migration_changes():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits 1 when a migration is missing
        pytest.fail(f"models changed without a migration (run manage.py makemigrations):\n{out.getvalue()}"
                    if exc.code else out.getvalue())
    assert "No changes detected" in out.getvalue()
