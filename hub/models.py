"""The site's own tables (beyond the cache table of migration 0001)."""

from django.db import models


class SchedulerLease(models.Model):
    """Which beat of the cluster sends the periodic tasks: the holder renews its lease every few
    seconds; another beat takes over only once the lease has expired (hub/beat.py)."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
