# authtwin — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# The local PostgreSQL the contract suite also runs on; unset it (or have none) and those
# cases skip with the reason shown. Under CI=true a missing PostgreSQL fails the run.
export AUTHTWIN_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# The Redis that throttling counters use on the PostgreSQL targets and the live servers.
export AUTHTWIN_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install wrk nginx migrate cluster run run-flask dev dev-flask test fuzz bench bench-quick contract-fastapi contract-flask openapi compare lint fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The deployment step before any production server starts (production servers create no
# table and refuse a database that is not at the code's revision). It reads the servers'
# AUTHTWIN_* settings, so production's need a secret here too; the database is
# AUTHTWIN_DATABASE_URL's, by default ./authtwin.db; several at once are safe (they queue).
migrate: install  ## upgrade the database of the AUTHTWIN_* settings to the code's schema
	$(BIN)/authtwin migrate

# The hardening of deploy/servers.py (head limits and deadline, graceful shutdown, no banner;
# see there). The FastAPI twin's uvicorn settings are its worker's (deploy/uvicorn_worker.py).
# AUTHTWIN_ENV=development: settings default to production, which would refuse to start
# without a secret and an `authtwin migrate` first; development migrates and, without
# AUTHTWIN_SECRET_KEY, signs with a random key (a given one is still checked).
run: install  ## the FastAPI twin on SQLite at http://127.0.0.1:8000 (docs at /docs)
	AUTHTWIN_ENV=development $(BIN)/gunicorn --bind 127.0.0.1:8000 --workers 1 --no-control-socket --graceful-timeout 10 \
		--worker-class deploy.uvicorn_worker.AuthtwinUvicornWorker 'fastapi_app:create_app()'

# --threads: the 8 of deploy/servers.py, and one per event stream the worker may hold (100 by
# default, AUTHTWIN_EVENTS_MAX_STREAMS): each open stream holds a thread (flask_app/streams.py).
run-flask: install  ## the Flask twin on SQLite at http://127.0.0.1:5000, under gunicorn
	AUTHTWIN_ENV=development $(BIN)/gunicorn --bind 127.0.0.1:5000 --workers 1 --no-control-socket --graceful-timeout 10 \
		--worker-class deploy.gunicorn_worker.DrainingThreadWorker --threads 108 \
		--limit-request-line 4094 --limit-request-fields 100 --limit-request-field_size 8190 \
		--config python:deploy.gunicorn_conf 'flask_app:create_app()'

# Development servers: each twin restarted when its code changes. AUTHTWIN_ENV is set, as the
# default is production (see run). The ports are variables (make dev DEV_PORT=8001) so that
# tests/test_dev_reload.py can run these very recipes.
DEV_PORT       ?= 8000
DEV_FLASK_PORT ?= 5000

# --reload-dir: the code only. uvicorn's default, the whole directory, takes in .venv
# (thousands of files to watch, and `make install` rewriting .py files there would restart
# the server mid-install) and ./authtwin.db, which every signup and login writes: each write
# would wake the reloader, to find no .py file changed.
dev: install  ## the FastAPI twin on SQLite at http://127.0.0.1:8000, reloaded on code change
	AUTHTWIN_ENV=development $(BIN)/uvicorn --factory fastapi_app:create_app \
		--reload --reload-dir shared --reload-dir fastapi_app \
		--host 127.0.0.1 --port $(DEV_PORT) --no-server-header --no-proxy-headers --ws websockets-sansio

# --debug: Flask's reloader, and Werkzeug's debugger, which runs Python typed into a browser
# page once given the PIN printed in the terminal. --host 127.0.0.1 keeps the debugger and its
# PIN off the network (given explicitly, so FLASK_RUN_HOST cannot widen it). FLASK_SKIP_DOTENV:
# the flask command would load a .env or .flaskenv file, which uvicorn and gunicorn never do.
dev-flask: install  ## the Flask twin on SQLite at http://127.0.0.1:5000, Flask's debug mode
	AUTHTWIN_ENV=development FLASK_SKIP_DOTENV=1 $(BIN)/flask --app flask_app run --debug \
		--host 127.0.0.1 --port $(DEV_FLASK_PORT)

# --dist loadgroup: a module that starts servers for all its tests (tests/test_cluster.py)
# runs on one worker; every other test is spread as before.
test: install  ## in-process: both apps x SQLite and PostgreSQL; then both real servers over HTTP
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	$(BIN)/python -m tests.live fastapi,flask -q

fuzz: install  ## deeper, random: schema fuzzing and differential testing of both twins
	AUTHTWIN_FUZZ_EXAMPLES=200 AUTHTWIN_DIFF_EXAMPLES=300 $(BIN)/python -m pytest -n 2 \
		tests/test_fuzz.py tests/test_differential.py

bench: install wrk  ## both twins under load, SQLite and PostgreSQL (~12 min): bench/results/<date>.md
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench full

bench-quick: install wrk  ## one short round on SQLite (~1 min): bench/results/<date>-quick.md
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench quick

# Production topology on this machine: nginx in front of two replicas of each twin, sharing
# PostgreSQL and Redis (AUTHTWIN_DATABASE_URL, AUTHTWIN_REDIS_URL; the local ones by default).
# Ctrl-C stops it all. CLUSTER_ARGS="--workers 1 --fastapi-port 8080 --flask-port 5080".
cluster: install nginx  ## nginx + 2 replicas per twin: FastAPI at :8000, Flask at :5000
	$(BIN)/python -m deploy.cluster $(CLUSTER_ARGS)

# Debian's nginx, and headers-more so that no Server header names it (deploy/nginx.py).
nginx:
	@{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } \
		&& [ -e /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so ] || { \
		sudo_="$$([ "$$(id -u)" -eq 0 ] || echo sudo)"; \
		pkgs="nginx-light libnginx-mod-http-headers-more-filter"; \
		$$sudo_ apt-get install -y -q $$pkgs >/dev/null \
		|| { $$sudo_ apt-get update -q >/dev/null && $$sudo_ apt-get install -y -q $$pkgs >/dev/null; }; }

wrk:  ## the load generator for throughput ceilings, from Debian's packages
	@command -v wrk >/dev/null || { \
		sudo_="$$([ "$$(id -u)" -eq 0 ] || echo sudo)"; \
		$$sudo_ apt-get install -y -q wrk >/dev/null \
		|| { $$sudo_ apt-get update -q >/dev/null && $$sudo_ apt-get install -y -q wrk >/dev/null; }; }

contract-fastapi: install  ## the contract suite over HTTP against gunicorn with uvicorn's worker
	$(BIN)/python -m tests.live fastapi

contract-flask: install  ## the contract suite over HTTP against gunicorn
	$(BIN)/python -m tests.live flask

openapi: install  ## accept the FastAPI twin's generated OpenAPI document as the contract
	$(BIN)/python -m tests.openapi_contract

compare: install  ## docs/side-by-side.html and .md, and README's map, from docs/concerns.py
	$(BIN)/python -m docs.side_by_side

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared fastapi_app flask_app tests bench docs deploy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info authtwin.db authtwin.db-*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
