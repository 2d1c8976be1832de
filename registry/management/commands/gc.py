"""Delete unreachable manifests and blobs older than the grace period."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from registry.services.gc import cleanup_stale_uploads, collect_garbage


class Command(BaseCommand):
    help = "Garbage-collect the registry: unreachable manifests and blobs older than the grace period."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--grace-hours", type=float, default=None, help="Override HUB_GC_GRACE_HOURS.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would be deleted.")

    def handle(self, *args, **options) -> None:
        grace = timedelta(hours=options["grace_hours"]) if options["grace_hours"] is not None else None
        report = collect_garbage(grace=grace, dry_run=options["dry_run"])
        uploads = 0 if options["dry_run"] else cleanup_stale_uploads()
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(
            f"{verb} {report.manifests_deleted} manifests and {report.blobs_deleted} blobs "
            f"({report.bytes_freed} bytes); removed {uploads} stale uploads."
        )
