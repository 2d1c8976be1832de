"""Password hashing: Argon2id with OWASP's recommended cost.

Django's default Argon2 parameters take 100 MiB of memory per hash (memory_cost=102400 KiB). Every
registry token request made with a password verifies one, so each gunicorn thread doing a login
briefly needed 100 MiB. OWASP's Password Storage Cheat Sheet recommends argon2id with 19 MiB, two
iterations and one degree of parallelism. Hashes made with other parameters still verify and are
upgraded at the next successful login (Django's must_update).
"""

from django.contrib.auth.hashers import Argon2PasswordHasher

from lib.offload import off_the_loop


class Argon2idHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1

    # Argon2 releases the GIL: checked on a real thread, it no longer pauses the other requests of a
    # gevent worker (lib/offload.py).
    def encode(self, password, salt):
        return off_the_loop(super().encode, password, salt)

    def verify(self, password, encoded):
        return off_the_loop(super().verify, password, encoded)
