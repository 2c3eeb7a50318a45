# registryadmin: `make run` serves it, `make test` checks everything. Both start from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_ENV := DJANGO_SETTINGS_MODULE=tests.settings

.PHONY: install run test lint bench bench-audit bench-pages bench-backup clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt \
	  || { echo "python-ldap builds from source: apt-get install gcc libldap2-dev libsasl2-dev" >&2; exit 1; }
	@touch $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@bin/serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# The suite runs in two parts: every test that starts no process of its own on two xdist workers (a
# file stays on one worker: the Redis databases a file uses are its own), then the end-to-end tests
# and those that make their own PostgreSQL databases one at a time (they start registries, gunicorn,
# celery, slapd and Chromium on the same loopback and Redis). With TEST_DATABASE_URL (PostgreSQL) both
# parts run there, then the end-to-end tests of the embedded SQLite default's own paths run again on
# SQLite: `make run` and its first verify, the registry's token and notification round trip, htpasswd
# files, the token cache (SQLITE_E2E; the others' subject does not change with the database, every
# backup is verified by restoring it into a scratch SQLite database anyway, and CI time is bounded).
PARALLEL = -m "not e2e and not own_databases" -n 2 --dist loadfile
SERIAL = -m "e2e or own_databases"
SQLITE_E2E = tests/ops/test_make_run.py tests/ops/test_serve_first_verify.py tests/ops/test_registry_e2e.py \
	tests/ops/test_htpasswd_e2e.py tests/ops/test_token_cache_e2e.py

test: lint
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
	  echo "== whole suite on PostgreSQL ($$TEST_DATABASE_URL)" && \
	  $(PY) -m pytest $(PARALLEL) && $(PY) -m pytest $(SERIAL) && \
	  echo "== the embedded default's end-to-end paths on SQLite" && \
	  env -u TEST_DATABASE_URL $(PY) -m pytest -m "e2e and not own_databases and not browser" $(SQLITE_E2E); \
	else \
	  $(PY) -m pytest $(PARALLEL) && $(PY) -m pytest $(SERIAL); \
	fi

bench: install
	$(PY) -m bench
	$(PY) -m bench.limits_bench
	$(PY) -m bench.ldap_bench
	$(PY) -m bench.rewrap_bench
	$(PY) -m bench.preflight_bench

# The audit log at scale: seeds 10M records (BENCH_AUDIT_ROWS) into a throwaway PostgreSQL database.
bench-audit: install
	$(PY) -m bench.audit_bench

# Server time and SQL queries of every main page at 10k users, 1k teams, 50k grants, 1M audit records
# (BENCH_PAGES_* scale it down), in throwaway PostgreSQL databases.
bench-pages: install
	$(PY) -m bench.pages_bench

# Time, size and peak memory of `manage.py backup` and of `restore_backup` (dry run, onto a fresh install,
# --force onto a full one) at 10k users, 1k teams, 50k grants (BENCH_BACKUP_* scale it down), in throwaway
# PostgreSQL databases; not part of `bench` (about four minutes).
bench-backup: install
	$(PY) -m bench.backup_bench

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
