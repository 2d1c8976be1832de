"""gunicorn settings for Wharf. Environment: HUB_BIND, PORT, HUB_WEB_WORKERS, HUB_WEB_THREADS."""

import multiprocessing
import os

bind = f"{os.environ.get('HUB_BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("HUB_WEB_WORKERS") or min(4, multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("HUB_WEB_THREADS") or 8)
# Blob uploads of several GiB over slow links: a worker thread may be busy for a long time.
timeout = int(os.environ.get("HUB_WEB_TIMEOUT") or 3600)
# On stop, requests still running get this long; `manage.py serve` stops everything within 10 s.
graceful_timeout = 5
keepalive = 75
# No request-size limit of gunicorn's own: blobs stream through Django in fixed chunks.
limit_request_line = 8190
limit_request_field_size = 16380
forwarded_allow_ips = os.environ.get("HUB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("HUB_ACCESS_LOG", "-") or None
logger_class = "hub.gunicorn_logging.RedactingLogger"  # build trigger tokens never reach the access log
errorlog = "-"
wsgi_app = "hub.wsgi:application"
# sendfile() is on by default; don't set it here (gunicorn 27 reads `sendfile = True` as --no-sendfile).


def post_worker_init(worker):
    """Move everything loading the site made (modules, URL patterns, models: ~100,000 objects)
    out of the garbage collector's sight. Otherwise each full collection walks them all, and
    stalls every request of the worker meanwhile: up to ~100 ms measured, 8 ms after freezing."""
    import gc

    gc.collect()
    gc.freeze()
