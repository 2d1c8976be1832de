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


class KeyFingerprint(models.Model):
    """A secret every node of the cluster must share, as the first node to check recorded it
    (hub/keycheck.py): never the secret, only a public key id or an HMAC made with the secret."""

    name = models.CharField(max_length=64, primary_key=True)
    fingerprint = models.CharField(max_length=128)
    recorded_at = models.DateTimeField()
    recorded_by = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"{self.name}: {self.fingerprint} (recorded {self.recorded_at:%Y-%m-%d %H:%M:%S} by {self.recorded_by})"
