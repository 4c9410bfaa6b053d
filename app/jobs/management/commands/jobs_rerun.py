"""Re-run failed jobs: put them back into the outbox as a fresh attempt (services.job_rerun).

    python manage.py jobs_rerun <job id> [<job id> ...]
    python manage.py jobs_rerun --failed-within 3600 --error-contains abandoned   # a dead worker's jobs
    python manage.py jobs_rerun --failed-within 3600 --dry-run                     # list, change nothing

Only failed jobs are taken; an import whose rejected upload was removed is skipped (the client
uploads again). The sweeper (or the publish on commit) sends them; exit status 1 when a named job
was not re-run.
"""
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from app.jobs import services


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", help="ids of failed jobs")
        parser.add_argument("--failed-within", type=float, metavar="SECONDS",
                            help="every job that failed in the last SECONDS")
        parser.add_argument("--error-contains", default="", metavar="TEXT", help="only jobs whose error contains TEXT")
        parser.add_argument("--dry-run", action="store_true", help="list the jobs, re-run none")

    def _more(self, matched: int) -> None:
        if matched > services.RERUN_BATCH:
            self.stdout.write(f"{matched - services.RERUN_BATCH} more failed job(s) match: one run takes "
                              f"the {services.RERUN_BATCH} oldest; run the command again")

    def handle(self, *args, ids=(), failed_within=None, error_contains="", dry_run=False, **options):
        if not ids and failed_within is None:
            raise CommandError("name job ids, or --failed-within SECONDS")
        since = timezone.now() - timedelta(seconds=failed_within) if failed_within is not None else None
        try:
            jobs = services.jobs_failed_matching(ids, failed_since=since, error_contains=error_contains)
            matched = jobs.count()
        except ValueError as exc:
            raise CommandError(f"not a job id: {exc}") from None
        if dry_run:
            for pk, kind, error in jobs.values_list("pk", "kind", "error")[:services.RERUN_BATCH]:
                self.stdout.write(f"would re-run {pk} ({kind}): {error[:120]}")
            self._more(matched)
            return
        try:
            done, skipped = services.jobs_rerun_failed(ids, failed_since=since, error_contains=error_contains,
                                                       reason="re-run by manage.py jobs_rerun")
        except ValueError as exc:
            raise CommandError(f"not a job id: {exc}") from None
        for pk in done:
            self.stdout.write(f"re-run {pk}")
        for pk, why in skipped:
            self.stderr.write(f"not re-run {pk}: {why}")
        self.stdout.write(f"{len(done)} job(s) queued again, {len(skipped)} skipped")
        self._more(matched)
        if ids and skipped:
            raise CommandError(f"{len(skipped)} named job(s) not re-run")
