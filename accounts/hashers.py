"""Password hashing: Argon2id with OWASP's recommended cost.

Django's default Argon2 parameters take 100 MiB of memory per hash (memory_cost=102400 KiB). Every
registry token request made with a password verifies one, so each gunicorn thread doing a login
briefly needed 100 MiB. OWASP's Password Storage Cheat Sheet recommends argon2id with 19 MiB, two
iterations and one degree of parallelism. Hashes made with other parameters still verify and are
upgraded at the next successful login (Django's must_update).
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
