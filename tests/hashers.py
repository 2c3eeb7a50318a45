"""A cheap PBKDF2 for tests: same algorithm name, so real app processes still verify its hashes."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
