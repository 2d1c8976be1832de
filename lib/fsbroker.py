"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own `filesystem://` transport creates a message file, then fills it, while readers list the
folder and read whatever `.msg` file they find: a reader can take an empty or half-written message,
and the JSONDecodeError it raises stops the Celery worker ("Unrecoverable error"). It also deletes a
message as soon as it is read, so a worker killed mid-task loses it although tasks are acks_late.

This transport (URL `wharf-fs://`, same transport options) changes four things:

- a message is written to a dot-name the readers ignore, fsynced, then renamed to its `.msg` name:
  a reader sees a whole message or none;
- a reader claims a message by renaming it into `processing/<its pid>-<start time>/` (a folder next
  to the queue folder, so on the same filesystem and the rename is atomic): two readers never get
  the same message;
- the claimed file stays there until the message is acked (or rejected, or handed back at shutdown);
  the claims of a process that died are put back in the queue by the next channel any process opens;
- a message that is empty, torn or not a kombu message is logged and moved aside to `malformed/`;
  the worker goes on with the next one.

Exchange tables (the control folder) are replaced atomically too, under a lock file of their own.
It imports no Django: the build worker (builds/worker.py) uses it as the site does.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.transport.virtual.base import QoS as VirtualQoS
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)

SCHEME = "wharf-fs"
URL = f"{SCHEME}://"
TEMP_PREFIX = "."  # names the readers skip: a message being written
# A message that does not decode is read again this many times (10 ms apart) before it is set aside: a
# writer of kombu's own kind (open, then fill) may still be filling it; ours never leave one half-written.
READ_RETRIES = 2
RETRY_SECONDS = 0.01


def _process_start_time(pid: int) -> str:
    """The start time of `pid` in clock ticks since boot (Linux), "" where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _owner_name(pid: int) -> str:
    return f"{pid}-{_process_start_time(pid) or '0'}"


def _owner_alive(name: str) -> bool:
    pid_text, _, started = name.partition("-")
    if not pid_text.isdigit():
        return True  # not ours: leave it alone
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    current = _process_start_time(pid)
    return not current or started in ("0", current)  # the same pid taken by another process is not alive


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a dot-named file next to `path`, fsync it, and rename it to `path`."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(descriptor, "wb", closefd=False) as stream:
            stream.write(data)
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    os.close(descriptor)
    os.rename(temp, path)


class QoS(VirtualQoS):
    """Unacked messages as kombu keeps them, plus the claimed file of each, removed once settled."""

    def ack(self, delivery_tag) -> None:
        super().ack(delivery_tag)
        self.channel._settle(delivery_tag)

    def reject(self, delivery_tag, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)  # a requeued message is written again first
        self.channel._settle(delivery_tag)

    def restore_unacked(self):
        self._flush()
        tags = list(self._delivered)
        errors = super().restore_unacked()
        kept = {message.delivery_tag for _, message in errors}
        for tag in tags:
            if tag not in kept:  # written back to the queue: the claim goes
                self.channel._settle(tag)
        return errors


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes, claims by rename, and malformed messages set aside."""

    QoS = QoS
    _swept: set[tuple[int, Path]] = set()  # (pid, processing folder) where dead owners' claims went back
    _sweep_lock = threading.Lock()

    def __init__(self, *args, **kwargs) -> None:
        self._claims: dict[str, Path] = {}  # delivery tag → claimed file
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)
        self._requeue_orphans_once()

    # --- folders ---------------------------------------------------------------------------
    @cached_property
    def processing_folder(self) -> Path:
        return Path(self.transport_options.get("processing_folder")
                    or Path(self.data_folder_in).parent / "processing")

    @cached_property
    def malformed_folder(self) -> Path:
        return Path(self.transport_options.get("malformed_folder")
                    or Path(self.data_folder_in).parent / "malformed")

    def _own_folder(self) -> Path:
        """This process's claims (a forked child gets a folder of its own)."""
        folder = self.processing_folder / _owner_name(os.getpid())
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # --- messages --------------------------------------------------------------------------
    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{time.time_ns() // 1000:017d}_{uuid.uuid4()}.{queue}.msg"
        try:
            _write_atomically(Path(self.data_folder_out) / name, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out}") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        own = None
        for name in sorted(os.listdir(folder)):
            if name.startswith(TEMP_PREFIX) or name.partition(".")[2] != wanted:
                continue
            own = own or self._own_folder()
            claimed = own / name
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another reader took it
            payload = self._read_claimed(claimed)
            if payload is None:
                continue
            tag = payload["properties"]["delivery_tag"]
            if queue in self._no_ack_queues:
                self._drop(claimed)
            else:
                self._claims[tag] = claimed
            return payload
        raise Empty()

    def _read_claimed(self, claimed: Path) -> dict | None:
        """The message in `claimed`, or None once it was moved aside as malformed."""
        problem = ""
        for attempt in range(READ_RETRIES + 1):
            if attempt:
                time.sleep(RETRY_SECONDS)
            try:
                payload = loads(bytes_to_str(claimed.read_bytes()))
                self.Message(payload, channel=self)  # what the consumer will do: it must not raise there
                return payload
            except FileNotFoundError:
                return None
            except Exception as exc:  # noqa: BLE001 - any message that cannot be delivered is set aside
                problem = f"{type(exc).__name__}: {exc}"[:200]
        self.malformed_folder.mkdir(parents=True, exist_ok=True)
        try:
            size = claimed.stat().st_size
            os.rename(claimed, self.malformed_folder / claimed.name)
        except OSError:
            return None
        logger.error("malformed message %s (%d bytes) moved to %s: %s", claimed.name, size, self.malformed_folder,
                     problem)
        return None

    def _settle(self, delivery_tag) -> None:
        claimed = self._claims.pop(delivery_tag, None)
        if claimed is not None:
            self._drop(claimed)

    def _drop(self, claimed: Path) -> None:
        try:
            if self.store_processed:
                os.rename(claimed, Path(self.processed_folder) / claimed.name)
            else:
                claimed.unlink()
        except FileNotFoundError:
            pass

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        if no_ack:
            self._no_ack_queues.add(queue)  # nobody will ack these: no claim is kept
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag):
        queue = self._tag_to_queue.get(consumer_tag)
        self._no_ack_queues.discard(queue)
        return super().basic_cancel(consumer_tag)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._settle(message.delivery_tag)
        return message

    def _requeue_orphans_once(self) -> None:
        key = (os.getpid(), self.processing_folder)
        with Channel._sweep_lock:
            if key in Channel._swept:
                return
            Channel._swept.add(key)
        try:
            requeue_orphans(self.processing_folder, Path(self.data_folder_in))
        except OSError:
            logger.exception("could not put back the messages of dead workers")

    # --- exchange tables -------------------------------------------------------------------
    @contextmanager
    def _table_lock(self, exchange) -> Iterator[Path]:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(self.control_folder / f".{file.name}.lock", "ab") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield file
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        for attempt in range(READ_RETRIES + 1):
            try:
                table = json.loads(file.read_bytes())
                return [filesystem.exchange_queue_t(*entry) for entry in table]
            except FileNotFoundError:
                return []
            except (ValueError, TypeError):
                if attempt == READ_RETRIES:
                    raise ChannelError(f"Cannot read the exchange table {file}") from None
                time.sleep(RETRY_SECONDS)
        return []

    def _write_table(self, file: Path, table: list) -> None:
        _write_atomically(file, str_to_bytes(dumps(table)))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            table = self.get_table(exchange)
            if entry not in table:
                self._write_table(file, [entry, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        super(filesystem.Channel, self)._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            table = self.get_table(exchange)
            if entry in table:
                self._write_table(file, [item for item in table if item != entry])


STALE_TEMP_SECONDS = 3600  # a message still being written after this long lost its writer


def requeue_orphans(processing: Path, queue_folder: Path) -> int:
    """Put the claimed messages of processes that are gone back in the queue (under their old names,
    so they keep their place), and delete half-written messages whose writer died; returns how many
    messages went back."""
    oldest = time.time() - STALE_TEMP_SECONDS
    for name in os.listdir(queue_folder) if queue_folder.is_dir() else ():
        if name.startswith(TEMP_PREFIX) and name.endswith(".tmp"):
            try:
                if (queue_folder / name).stat().st_mtime < oldest:
                    (queue_folder / name).unlink()
            except FileNotFoundError:
                pass
    if not processing.is_dir():
        return 0
    count = 0
    for owner in processing.iterdir():
        if not owner.is_dir() or _owner_alive(owner.name):
            continue
        for claimed in owner.iterdir():
            try:
                os.rename(claimed, queue_folder / claimed.name)
                count += 1
            except FileNotFoundError:
                pass  # another process is putting them back too
        try:
            owner.rmdir()
        except OSError:
            pass
    if count:
        logger.warning("put %d unfinished message(s) of stopped workers back in the queue", count)
    return count


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = filesystem.virtual.BrokerState()
    driver_type = SCHEME
    driver_name = SCHEME


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
