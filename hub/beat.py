"""One beat per cluster, even when two are started: the beat scheduler sends the periodic tasks only
while it holds the cluster's lease (a row of `SchedulerLease`, taken and renewed by a conditional
UPDATE, atomic on SQLite and PostgreSQL alike).

Every beat (`celery -A hub beat`, or `-B` on a worker) uses `ClusterScheduler` (CELERY_BEAT_SCHEDULER).
The holder renews the lease at least every third of `HUB_BEAT_LEASE_SECONDS` (30 s); the others only
try to take it, and take it once it has expired: a beat whose node died is replaced within a lease.
A holder that cannot reach the database, or finds the lease taken by another, sends nothing until it
holds the lease again. A beat that stops gives the lease back, so a standby takes over at once.

A cluster is the beats that send to one broker: the lease is named after it (`lease_name`), since
the tasks a beat sends are taken by that broker's workers only. Hubs that share a database but not a
broker (the test suite's private hubs, a staging site on the production database server) each keep
their own schedule.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from hub.models import SchedulerLease

LEASE_NAME = "beat"


def lease_name(broker_url: str, broker_folder: str = "") -> str:
    """The lease of the beats sending to this broker (its URL, and its folder for the filesystem broker)."""
    return "beat:" + hashlib.sha256(f"{broker_url}|{broker_folder}".encode()).hexdigest()[:32]
logger = logging.getLogger(__name__)


def lease_hold(holder: str, seconds: float, *, name: str = LEASE_NAME, now: datetime | None = None) -> bool:
    """Take or renew the lease `name` for `holder` until `now + seconds`; False while another holds it."""
    now = now or timezone.now()
    until = now + timedelta(seconds=seconds)
    renewed = (SchedulerLease.objects.filter(name=name)
               .filter(Q(holder=holder) | Q(expires_at__lte=now))
               .update(holder=holder, expires_at=until))
    if renewed:
        return True
    try:
        with transaction.atomic():
            SchedulerLease.objects.create(name=name, holder=holder, expires_at=until)
    except IntegrityError:
        return False  # there, and held by another
    return True


def lease_release(holder: str, *, name: str = LEASE_NAME) -> None:
    """Give the lease back (only if `holder` still holds it)."""
    SchedulerLease.objects.filter(name=name, holder=holder).delete()


class ClusterScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, sending only while it holds the cluster's beat lease."""

    def __init__(self, *args, **kwargs) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = float(settings.HUB_BEAT_LEASE_SECONDS)
        self.holding = False
        super().__init__(*args, **kwargs)
        conf = self.app.conf
        self.lease = lease_name(conf.broker_url or "",
                                str((conf.broker_transport_options or {}).get("data_folder_in", "")))

    def tick(self, *args, **kwargs) -> float:
        if not self._hold():
            return self.lease_seconds / 3
        return min(super().tick(*args, **kwargs), self.lease_seconds / 3)

    def _hold(self) -> bool:
        close_old_connections()  # a beat lives for months: a connection the server dropped is replaced
        try:
            holding = lease_hold(self.holder, self.lease_seconds, name=self.lease)
        except DatabaseError:
            logger.warning("beat %s: cannot reach the database for its lease; sending nothing", self.holder,
                           exc_info=True)
            holding = False
        if holding != self.holding:
            logger.info("beat %s %s the cluster's beat lease", self.holder,
                        "holds" if holding else "does not hold (another beat sends)")
            self.holding = holding
        return holding

    def close(self) -> None:
        if self.holding:
            try:
                lease_release(self.holder, name=self.lease)
            except DatabaseError:
                logger.warning("beat %s: could not give its lease back (it expires by itself)", self.holder)
        super().close()
