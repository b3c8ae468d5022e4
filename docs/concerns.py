"""What the side-by-side pages show: each concern, and where its code lives in each twin.

Code is named here, never copied: ``make compare`` finds every ``Ref`` in its file and
writes the pages from it. When a definition moves or is renamed, edit its ``Ref`` and run
``make compare`` again; a name that no longer exists fails ``tests/test_side_by_side.py``.
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ref:
    """A definition in ``path`` (from the repository root): a module-level function, class
    or assignment (``SessionDep``), or a method as ``Class.method``."""

    path: str
    name: str


@dataclass(frozen=True)
class Concern:
    title: str
    slug: str  # the section's id, which every link to the concern points at
    notes: str  # what differs between the twins, and why; `backticks` mark code
    fastapi: Sequence[Ref] = ()
    flask: Sequence[Ref] = ()
    shared: Sequence[Ref] = ()  # the shared core the twins call for this concern


CONCERNS: list[Concern] = [
    Concern(
        title="App factory",
        slug="app-factory",
        notes=(
            "Both factories build the same `Runtime` from the settings, then install "
            "middleware, error handlers and routes (Flask adds its validation hook and the session "
            "teardown, which FastAPI does not need, and FastAPI builds the reader of its async "
            "read path); what differs most is when start-up runs. FastAPI has a "
            "`lifespan`: `prepare` (the schema check, the first superuser's password hash) runs "
            "when the server starts the app, in the threadpool because it blocks, and `dispose` at "
            "shutdown. WSGI has no lifespan, so the Flask factory calls `prepare` itself, once "
            "per process, and no hook calls `dispose`: the pools end with the process."
        ),
        fastapi=[
            Ref("fastapi_app/app.py", "SYNC_ROUTE_THREADS"),
            Ref("fastapi_app/app.py", "create_app"),
        ],
        flask=[Ref("flask_app/app.py", "create_app")],
        shared=[
            Ref("shared/runtime.py", "Runtime.build"),
            Ref("shared/runtime.py", "Runtime.prepare"),
            Ref("shared/runtime.py", "Runtime.dispose"),
        ],
    ),
    Concern(
        title="Settings",
        slug="settings",
        notes=(
            "Settings are read from the environment once, by the factory (`Settings()`), or "
            "passed in by a test; no module reads them at import. The factory keeps them in "
            "the `Runtime`: FastAPI keeps that on `app.state` and injects it as `RuntimeDep`, "
            "Flask keeps it in `app.extensions` and reads it through `current_app`, the proxy "
            "to the app serving the request. FastAPI's `get_runtime` and `get_settings` are "
            "`async def` only so that reading an attribute costs no trip through the threadpool."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "get_runtime"),
            Ref("fastapi_app/deps.py", "RuntimeDep"),
            Ref("fastapi_app/deps.py", "get_settings"),
            Ref("fastapi_app/deps.py", "SettingsDep"),
        ],
        flask=[
            Ref("flask_app/deps.py", "get_runtime"),
            Ref("flask_app/deps.py", "get_settings"),
        ],
        shared=[Ref("shared/infrastructure/config.py", "Settings")],
    ),
    Concern(
        title="Database session",
        slug="database-session",
        notes=(
            "FastAPI's `get_session` is a generator dependency: a route that declares "
            "`SessionDep` gets a session, and the `with` block closes it when the request is "
            "done. Flask has no dependency to clean up after, so `get_session` opens the "
            "session at the first call, keeps it on `g` for the rest of the request, and a "
            "`teardown_appcontext` hook closes it. On both, a route that never asks for a "
            "session opens none."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "get_session"),
            Ref("fastapi_app/deps.py", "SessionDep"),
        ],
        flask=[
            Ref("flask_app/deps.py", "get_session"),
            Ref("flask_app/deps.py", "close_session"),
        ],
        shared=[
            Ref("shared/infrastructure/db.py", "make_engine"),
            Ref("shared/infrastructure/db.py", "make_session_factory"),
            Ref("shared/infrastructure/timeouts.py", "BoundedConnection"),
        ],
    ),
    Concern(
        title="Services",
        slug="services",
        notes=(
            "The use cases are methods of objects built once per app by `Runtime.build`, each "
            "holding the collaborators it needs (hasher, policy, token codec, throttle, token "
            "store), like fastapi-users' `UserManager` but handed the session on each call "
            "rather than built per request. Routes ask for a service under the same "
            "name on both twins: an `Annotated` dependency in FastAPI, a function reading "
            "`current_app` in Flask. A new collaborator is one more constructor argument in "
            "`shared/runtime.py`, and no route changes."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "get_auth_service"),
            Ref("fastapi_app/deps.py", "AuthServiceDep"),
            Ref("fastapi_app/deps.py", "get_user_service"),
            Ref("fastapi_app/deps.py", "UserServiceDep"),
            Ref("fastapi_app/deps.py", "get_admin_service"),
            Ref("fastapi_app/deps.py", "AdminServiceDep"),
        ],
        flask=[
            Ref("flask_app/deps.py", "get_auth_service"),
            Ref("flask_app/deps.py", "get_user_service"),
            Ref("flask_app/deps.py", "get_admin_service"),
        ],
        shared=[
            Ref("shared/services/auth.py", "AuthService.__init__"),
            Ref("shared/services/users.py", "UserService.__init__"),
            Ref("shared/services/admin.py", "AdminService.__init__"),
        ],
    ),
    Concern(
        title="Current user",
        slug="current-user",
        notes=(
            "The same two steps on both twins: decode the bearer token, then look the user up "
            "with one prebuilt statement. FastAPI's dependencies are `async`: the decode runs on "
            "the event loop and the lookup is awaited through the reader (an asyncio engine "
            "on PostgreSQL, one reader thread on SQLite); and since FastAPI solves a dependency "
            "once per request, `AccessClaims` and `CurrentUser` share one decode. Flask calls "
            "`find_principal` synchronously on its worker thread, and caches both results on "
            "`g` for the same effect. Reading the token is FastAPI's `OAuth2PasswordBearer`, "
            "which also puts the password flow in the OpenAPI document; Flask's "
            "`bearer_token` parses the header the same way."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "bearer_token"),
            Ref("fastapi_app/deps.py", "get_access_claims"),
            Ref("fastapi_app/deps.py", "AccessClaims"),
            Ref("fastapi_app/deps.py", "get_current_user"),
            Ref("fastapi_app/deps.py", "CurrentUser"),
            Ref("fastapi_app/deps.py", "get_reader"),
            Ref("fastapi_app/deps.py", "ReaderDep"),
            Ref("fastapi_app/readers.py", "AsyncEngineReader.principal"),
            Ref("fastapi_app/readers.py", "ThreadReader.principal"),
        ],
        flask=[
            Ref("flask_app/deps.py", "bearer_token"),
            Ref("flask_app/deps.py", "get_access_claims"),
            Ref("flask_app/deps.py", "get_current_user"),
        ],
        shared=[
            Ref("shared/services/identity.py", "ACTIVE_USER"),
            Ref("shared/services/identity.py", "find_principal"),
            Ref("shared/services/identity.py", "find_principal_async"),
        ],
    ),
    Concern(
        title="Administration, and its audit trail",
        slug="administration",
        notes=(
            "The superuser gate is a dependency in FastAPI (`CurrentSuperuser` in the route's "
            "parameters, solved before the body is read) and a call at the top of the view in "
            "Flask; both hand the check to the same `AdminService.require_superuser`, which "
            "logs every refusal with the actor and the request (`PATCH /api/v1/users/7`) before "
            "the 403. A change is logged once committed, one record per act (promote, "
            "demote, deactivate, reactivate, password_reset, email_change) with actor and "
            "target, or as a refusal with its reason (the last superuser, a taken email)."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "get_current_superuser"),
            Ref("fastapi_app/deps.py", "CurrentSuperuser"),
            Ref("fastapi_app/routes/users.py", "update_user"),
        ],
        flask=[
            Ref("flask_app/deps.py", "get_current_superuser"),
            Ref("flask_app/routes/users.py", "update_user"),
        ],
        shared=[
            Ref("shared/services/admin.py", "AdminService.require_superuser"),
            Ref("shared/services/admin.py", "AdminService.update_user"),
            Ref("shared/infrastructure/audit.py", "admin_event"),
        ],
    ),
    Concern(
        title="Serialising a response",
        slug="serialising-responses",
        notes=(
            "FastAPI filters and serialises what a route returns through `response_model`. "
            "Flask has no such step, so `serialize` validates the value as the same pydantic "
            "model (`from_attributes=True`, for ORM objects too), and `ContractJSONProvider` "
            "writes JSON the way FastAPI's `JSONResponse` does: keys in model order, UTF-8 as "
            "is, no trailing newline. FastAPI's `read_me` can be `async`: it only returns the "
            "user its async dependency found."
        ),
        fastapi=[Ref("fastapi_app/routes/users.py", "read_me")],
        flask=[
            Ref("flask_app/routes/users.py", "read_me"),
            Ref("flask_app/validation.py", "serialize"),
            Ref("flask_app/validation.py", "ContractJSONProvider"),
        ],
        shared=[Ref("shared/domain/schemas.py", "UserPublic")],
    ),
    Concern(
        title="Mail after the response: BackgroundTasks hands over, a shared pool sends",
        slug="background-mail",
        notes=(
            "FastAPI's `BackgroundTasks`, and where it stops. The service writes each message to "
            "the outbox in the request's own transaction (`enqueue`); the route then hands the "
            "ids it committed to a background step. FastAPI has one built in: `BackgroundTasks` "
            "runs a task after the response is sent, in this process; a plain `def` task runs in "
            "AnyIO's threadpool, the few threads the sync routes share. Sending there, a mail "
            "server that answers each SMTP step just inside the timeout holds those threads, and "
            "login, signup and refresh wait behind the mail. So on both twins the request only "
            "hands the ids to a `MailPool`, threads of its own with a bounded queue: FastAPI's "
            "task is `async` and only submits, from the event loop; WSGI ends with the response, "
            "so Flask submits from the view. The cost: two more threads a worker, and a queue "
            "whose overflow waits in the outbox. At shutdown the pool claims nothing more and "
            "lets go of what it has not sent: FastAPI stops it in the app's lifespan, after the "
            "last request; WSGI has no lifespan, so Flask stops it at the worker process's exit. "
            "Nothing survives a crash, and nothing has to: the message is in the outbox, and "
            "`authtwin deliver-mail` sends what no background step did, claiming each message "
            "first so that none is sent twice."
        ),
        fastapi=[
            Ref("fastapi_app/background.py", "send_mail_after_response"),
            Ref("fastapi_app/routes/recovery.py", "request_password_reset"),
        ],
        flask=[
            Ref("flask_app/background.py", "stop_mail_pool_at_exit"),
            Ref("flask_app/background.py", "send_mail_after_response"),
            Ref("flask_app/routes/recovery.py", "request_password_reset"),
        ],
        shared=[
            Ref("shared/services/outbox.py", "enqueue"),
            Ref("shared/services/outbox.py", "queued_in"),
            Ref("shared/services/mail_pool.py", "MailPool.submit"),
            Ref("shared/services/mail_delivery.py", "MailDelivery.deliver"),
        ],
    ),
    Concern(
        title="Password reset and email verification",
        slug="recovery",
        notes=(
            "The same steps on both twins: validate the body, one service call, the framework's "
            "way to answer (and, for the reset, to send the notice after it). A reset request "
            "writes one row whatever the address, so it answers alike for every address; the "
            "account is looked up when the message is prepared (`AccountMail.prepare`). A link's "
            "token is random, stored hashed, and redeemed by a compare-and-set, so it works once."
        ),
        fastapi=[
            Ref("fastapi_app/routes/recovery.py", "reset_password"),
            Ref("fastapi_app/routes/recovery.py", "verify_email"),
        ],
        flask=[
            Ref("flask_app/routes/recovery.py", "reset_password"),
            Ref("flask_app/routes/recovery.py", "verify_email"),
        ],
        shared=[
            Ref("shared/services/recovery.py", "RecoveryService.request_password_reset"),
            Ref("shared/services/recovery.py", "RecoveryService.reset_password"),
            Ref("shared/services/account_mail.py", "AccountMail.prepare"),
            Ref("shared/services/one_time_tokens.py", "OneTimeTokens.redeem"),
        ],
    ),
    Concern(
        title="Signup",
        slug="signup",
        notes=(
            "FastAPI reads the status, the response model and the route's checks "
            "(`JSONContentType` for 415, the rate limit) from the decorator, and validates the "
            "body from the parameter's type; `responses=` only feeds the OpenAPI document, which "
            "the Flask twin serves from the committed file instead. The Flask view makes the "
            "same steps as calls, but for the 415, which its `before_request` hook checks for "
            "every JSON endpoint (see Validation errors). Both routes are plain `def`: argon2 "
            "blocks, so FastAPI runs this one in its threadpool, as Flask runs every view on a "
            "worker thread. Either way the route hands the service only what came with the "
            "request."
        ),
        fastapi=[Ref("fastapi_app/routes/auth.py", "signup")],
        flask=[Ref("flask_app/routes/auth.py", "signup")],
        shared=[Ref("shared/services/auth.py", "AuthService.signup")],
    ),
    Concern(
        title="Login",
        slug="login",
        notes=(
            "The shape of signup, with another service call and `TokenPair` out. Flask's "
            "`@rate_limited` sits under `@bp.post`, so the blueprint registers the limited "
            "view; the other way round it would register the bare one. Neither route knows "
            "about the per-account lockout: `authenticate` counts it in the shared service, so "
            "both twins lock an account after the same failures."
        ),
        fastapi=[Ref("fastapi_app/routes/auth.py", "login")],
        flask=[Ref("flask_app/routes/auth.py", "login")],
        shared=[
            Ref("shared/services/auth.py", "AuthService.login"),
            Ref("shared/services/auth.py", "AuthService.authenticate"),
        ],
    ),
    Concern(
        title="Token form (OAuth2 password grant)",
        slug="token-form",
        notes=(
            "The one `async def` route of FastAPI's `/auth`: it reads the form itself, because "
            "`Form()` parameters would keep one of two repeated fields and answer a missing "
            "one with 422, where RFC 6749 wants 400 `invalid_request`. Starlette's "
            "`request.form()` is awaited, so the route hands the sync service to the "
            "threadpool itself (`run_in_threadpool`), and `TOKEN_FORM_DOCS` describes the "
            "undeclared form for OpenAPI. Flask reads `request.form` with repeats kept, and "
            "`FORM_ENDPOINTS` keeps its JSON body hook away from this endpoint."
        ),
        fastapi=[
            Ref("fastapi_app/routes/auth.py", "TOKEN_FORM_DOCS"),
            Ref("fastapi_app/routes/auth.py", "issue_token"),
        ],
        flask=[
            Ref("flask_app/validation.py", "FORM_ENDPOINTS"),
            Ref("flask_app/routes/auth.py", "issue_token"),
        ],
        shared=[
            Ref("shared/services/auth.py", "AuthService.token_from_form"),
            Ref("shared/services/auth.py", "_password_grant"),
        ],
    ),
    Concern(
        title="Refresh",
        slug="refresh",
        notes=(
            "The plainest view of the two idioms: FastAPI receives body, session, address and "
            "service as parameters; Flask asks for each with a call. Everything that makes a "
            "refresh safe (single use, a replay revoking the whole family, a conditional "
            "`UPDATE` so two concurrent refreshes cannot both win) is in the shared service, "
            "once."
        ),
        fastapi=[Ref("fastapi_app/routes/auth.py", "refresh")],
        flask=[Ref("flask_app/routes/auth.py", "refresh")],
        shared=[
            Ref("shared/services/auth.py", "AuthService.refresh"),
            Ref("shared/services/token_store.py", "TokenStore.rotate"),
        ],
    ),
    Concern(
        title="Logout",
        slug="logout",
        notes=(
            "Logout needs the caller and the access token's own claims, whose `jti` goes on the "
            "denylist. FastAPI declares both, `CurrentUser` and `AccessClaims`, and decodes the "
            "token once; Flask's `get_access_claims()` returns what `get_current_user()` already "
            "put on `g`. The empty 204: FastAPI's `response_class=Response` sends no "
            "Content-Type, and Flask's `no_content()` deletes the one Werkzeug adds."
        ),
        fastapi=[Ref("fastapi_app/routes/auth.py", "logout")],
        flask=[
            Ref("flask_app/routes/auth.py", "logout"),
            Ref("flask_app/validation.py", "no_content"),
        ],
        shared=[
            Ref("shared/services/auth.py", "AuthService.logout"),
            Ref("shared/services/token_store.py", "TokenStore.revoke_family"),
            Ref("shared/services/token_store.py", "TokenStore.deny_access_token"),
            Ref("shared/services/token_store.py", "TokenStore.purge"),
        ],
    ),
    Concern(
        title="Updating your account (PATCH /users/me)",
        slug="update-me",
        notes=(
            "Flask calls `get_current_user()` before `json_body(...)` because that is FastAPI's "
            "order: dependencies, the token among them, are resolved before the body is "
            "validated, so an invalid body without a token is a 401 on both. No rate limit "
            "here: a wrong `current_password` counts towards the account lockout inside the "
            "shared service. A new `email` changes nothing yet, and answers alike for a free "
            "and a taken address: a link is mailed to it, and `POST /auth/verify` applies the "
            "change only with the account's password (`EmailChanges.confirm`), so the owner "
            "of that address cannot complete a stranger's change by following it."
        ),
        fastapi=[Ref("fastapi_app/routes/users.py", "update_me")],
        flask=[Ref("flask_app/routes/users.py", "update_me")],
        shared=[
            Ref("shared/services/users.py", "UserService.update_me"),
            Ref("shared/services/users.py", "UserService.request_email_change"),
            Ref("shared/services/email_changes.py", "EmailChanges.confirm"),
        ],
    ),
    Concern(
        title="Validation errors",
        slug="validation-errors",
        notes=(
            "FastAPI validates declared parameters itself and raises `RequestValidationError`; "
            "its handler keeps FastAPI's 422 shape minus `input` and `ctx`, since a rejected "
            "value may be a password. The Flask twin validates the same pydantic models with "
            "FastAPI's options (`from_attributes=True`) and locates errors the same way, so "
            "types and messages match. It checks the media type and parses the JSON body in a "
            "`before_request` hook, because FastAPI parses a body declared JSON before any "
            "dependency: a malformed body is a 422 even without a token. All of that is one "
            "module, `flask_app/validation.py`, which the FastAPI twin does not need."
        ),
        fastapi=[
            Ref("fastapi_app/errors.py", "validation_error"),
            Ref("fastapi_app/deps.py", "require_json_content_type"),
            Ref("fastapi_app/deps.py", "JSONContentType"),
            Ref("fastapi_app/routes/users.py", "UserIdPath"),
        ],
        flask=[
            Ref("flask_app/validation.py", "install_validation"),
            Ref("flask_app/validation.py", "parse_json_body"),
            Ref("flask_app/validation.py", "json_body"),
            Ref("flask_app/validation.py", "path_user_id"),
            Ref("flask_app/validation.py", "_validated"),
            Ref("flask_app/deps.py", "require_json_content_type"),
        ],
        shared=[
            Ref("shared/domain/errors.py", "RequestValidationFailed"),
            Ref("shared/domain/errors.py", "public_validation_errors"),
            Ref("shared/domain/errors.py", "located"),
            Ref("shared/web/bodies.py", "is_json_media_type"),
        ],
    ),
    Concern(
        title="Error translation",
        slug="error-translation",
        notes=(
            "One handler per twin renders every `DomainError` from the class's own status, "
            "body and headers, so the twins cannot disagree about a domain error. Framework "
            "errors need more work on each side: Werkzeug's are HTML pages, made JSON here; "
            "Starlette's `Allow` names only the first route that matched, so the FastAPI twin "
            "lists every method itself. A bug: Flask's handler for `Exception` answers before "
            "the `after_request` hooks, which add their headers to the 500. Starlette runs its "
            "handler for `Exception` outside every middleware and then re-raises to the server, "
            "which logs the bug again as plain text; so the FastAPI twin catches bugs in a "
            "middleware of its own, outermost, which adds the headers itself, and both twins "
            "log the same JSON record once. Before calling it a bug, both last-resort handlers "
            "ask `outage_error`: a database that is down, frozen or timing out is a 503 with "
            "`Retry-After` and one warning line, on every route, with no route catching it."
        ),
        fastapi=[
            Ref("fastapi_app/errors.py", "domain_error"),
            Ref("fastapi_app/errors.py", "http_error"),
            Ref("fastapi_app/errors.py", "allowed_methods"),
            Ref("fastapi_app/errors.py", "UnexpectedErrorMiddleware"),
            Ref("fastapi_app/errors.py", "install_error_handlers"),
        ],
        flask=[
            Ref("flask_app/errors.py", "domain_error"),
            Ref("flask_app/errors.py", "http_error"),
            Ref("flask_app/errors.py", "unexpected_error"),
            Ref("flask_app/errors.py", "install_error_handlers"),
        ],
        shared=[
            Ref("shared/domain/errors.py", "DomainError"),
            Ref("shared/domain/errors.py", "InvalidToken"),
            Ref("shared/domain/errors.py", "TooManyRequests"),
            Ref("shared/domain/errors.py", "outage_error"),
            Ref("shared/infrastructure/outages.py", "is_database_outage"),
            Ref("shared/infrastructure/outages.py", "log_outage"),
            Ref("shared/infrastructure/logs.py", "log_unexpected_error"),
        ],
    ),
    Concern(
        title="Rate limiting",
        slug="rate-limiting",
        notes=(
            "Both count the operation per client address in the shared `Throttle` before the "
            "route runs. FastAPI's `rate_limited` returns a `Depends` for the route's "
            "`dependencies=[...]`, run for its effect (a 429) and never for a value; it is a "
            "plain `def` because with Redis the count is network I/O, which must stay off the "
            "event loop. Flask's is a view decorator, typed with `ParamSpec` so the view keeps "
            "its signature."
        ),
        fastapi=[
            Ref("fastapi_app/deps.py", "get_client_ip"),
            Ref("fastapi_app/deps.py", "ClientIP"),
            Ref("fastapi_app/deps.py", "rate_limited"),
        ],
        flask=[
            Ref("flask_app/deps.py", "get_client_ip"),
            Ref("flask_app/deps.py", "rate_limited"),
        ],
        shared=[
            Ref("shared/security/throttle.py", "Throttle.limit_client"),
            Ref("shared/security/throttle.py", "rate_limit_key"),
            Ref("shared/web/client_ip.py", "client_ip"),
        ],
    ),
    Concern(
        title="Middleware, in order",
        slug="middleware",
        notes=(
            "What every request passes through, installed in one function on each side. "
            "FastAPI wraps the app in pure ASGI middleware, and the last one added runs first; "
            "Flask registers hooks, `before_request` ones running in the order added and "
            "`after_request` ones in reverse. Both check the body size after answering an "
            "allowed CORS preflight (whose body nobody reads), so a 413 to an allowed origin "
            "still carries its CORS headers. `HeadMiddleware` exists on one side only: "
            "Werkzeug answers HEAD like GET by itself."
        ),
        fastapi=[Ref("fastapi_app/middleware.py", "install_middleware")],
        flask=[Ref("flask_app/middleware.py", "install_middleware")],
    ),
    Concern(
        title="Response headers",
        slug="response-headers",
        notes=(
            "The same loop over the same shared headers, with `setdefault` so a route's own "
            "header wins. FastAPI's is pure ASGI middleware that rewrites the "
            "`http.response.start` message (no `BaseHTTPMiddleware`: no extra task, no body "
            "buffering); Flask's is an `after_request` hook on the `Response` object. Both "
            "also reach the 500 of a bug (see Error translation)."
        ),
        fastapi=[Ref("fastapi_app/middleware.py", "ResponseHeadersMiddleware")],
        flask=[Ref("flask_app/middleware.py", "add_response_headers")],
        shared=[
            Ref("shared/web/headers.py", "RESPONSE_HEADERS"),
            Ref("shared/web/headers.py", "DOCS_CONTENT_SECURITY_POLICY"),
            Ref("shared/web/headers.py", "PAGE_HEADERS"),
            Ref("shared/web/headers.py", "response_headers"),
        ],
    ),
    Concern(
        title="Body size limit",
        slug="body-size-limit",
        notes=(
            "Werkzeug has a limit built in (`MAX_CONTENT_LENGTH`, set with the hooks) but "
            "objects only when a body is read, and cuts a chunked body short without a word; "
            "the Flask hook checks a declared length before routing and reads a chunked body "
            "to see whether it went past. FastAPI's own `max_body_size` answers in plain text, "
            "so the middleware checks `Content-Length` and reads a chunked body within the "
            "limit, then replays it to the app."
        ),
        fastapi=[
            Ref("fastapi_app/middleware.py", "BodyLimitMiddleware"),
            Ref("fastapi_app/middleware.py", "replay"),
        ],
        flask=[Ref("flask_app/middleware.py", "reject_oversized_body")],
        shared=[
            Ref("shared/web/bodies.py", "BODY_METHODS"),
            Ref("shared/web/bodies.py", "CONTENT_TOO_LARGE"),
        ],
    ),
    Concern(
        title="CORS",
        slug="cors",
        notes=(
            "Neither Starlette's `CORSMiddleware` nor flask-cors: they answer a refused "
            "preflight differently, so one shared `CorsPolicy` decides and each twin only "
            "copies its headers. FastAPI answers an allowed preflight in the middleware, "
            "before routing would 405 the `OPTIONS`; Flask answers it in its first "
            "`before_request` hook, whose returned response ends the request before the view."
        ),
        fastapi=[Ref("fastapi_app/middleware.py", "CorsMiddleware")],
        flask=[
            Ref("flask_app/middleware.py", "cors_policy"),
            Ref("flask_app/middleware.py", "answer_preflight"),
            Ref("flask_app/middleware.py", "add_cors_headers"),
        ],
        shared=[
            Ref("shared/web/cors.py", "CorsPolicy"),
            Ref("shared/web/cors.py", "is_preflight"),
            Ref("shared/web/cors.py", "merged_vary"),
        ],
    ),
    Concern(
        title="Docs pages",
        slug="docs-pages",
        notes=(
            "FastAPI generates `/openapi.json` from its routes, but its own `/docs` and "
            "`/redoc` load from a CDN, so the factory turns them off and these routes serve "
            "the pages from the shared assets (`include_in_schema=False` keeps them out of the "
            "document). Flask has no generator: it serves the committed contract file, which "
            "tests keep equal to its routes and to FastAPI's generated document."
        ),
        fastapi=[
            Ref("fastapi_app/routes/docs.py", "swagger_ui"),
            Ref("fastapi_app/routes/docs.py", "redoc"),
            Ref("fastapi_app/routes/docs.py", "docs_asset"),
        ],
        flask=[
            Ref("flask_app/routes/docs.py", "openapi"),
            Ref("flask_app/routes/docs.py", "swagger_ui"),
            Ref("flask_app/routes/docs.py", "redoc"),
            Ref("flask_app/routes/docs.py", "docs_asset"),
        ],
        shared=[
            Ref("shared/web/docs.py", "asset"),
            Ref("shared/web/contract.py", "openapi_document"),
        ],
    ),
    Concern(
        title="Account pages (the links in mail)",
        slug="account-pages",
        notes=(
            "The reset and verification links open `/reset-password` and `/verify-email`, "
            "static pages from the shared assets: their script reads the token from the "
            "fragment, which never reaches a server, and posts it to the API. The routes are "
            "the docs pages' again: FastAPI keeps them out of the generated document with "
            "`include_in_schema=False`, and the contract tests leave Flask's `pages` blueprint "
            "out of the routes they compare. Neither route sets a header: the response-headers "
            "middleware (FastAPI) and hook (Flask) give these paths their own policy, which "
            "allows this server's script and stylesheet and nothing inline."
        ),
        fastapi=[
            Ref("fastapi_app/routes/pages.py", "reset_password_page"),
            Ref("fastapi_app/routes/pages.py", "verify_email_page"),
            Ref("fastapi_app/routes/pages.py", "account_asset"),
        ],
        flask=[
            Ref("flask_app/routes/pages.py", "reset_password_page"),
            Ref("flask_app/routes/pages.py", "verify_email_page"),
            Ref("flask_app/routes/pages.py", "account_asset"),
        ],
        shared=[
            Ref("shared/web/account_pages.py", "page"),
            Ref("shared/web/account_pages.py", "asset"),
            Ref("shared/web/headers.py", "ACCOUNT_PAGES_CONTENT_SECURITY_POLICY"),
        ],
    ),
    Concern(
        title="Account events: a stream and a socket, with and without an event loop",
        slug="account-events",
        notes=(
            "What a stream sends and when it ends is one generator, `EventStream.conversation`, "
            "with no I/O in it: it yields `Send`, `Wait`, `Check` and `Close`, and each twin "
            "carries them out. FastAPI awaits: a stream is a coroutine waiting on an "
            "`asyncio.Event` that the inbox sets from any thread, and holds no thread while "
            "it waits; its event stream is an ASGI response of its own, because Starlette's "
            "`StreamingResponse` writes with no deadline. Flask blocks: WSGI gives a request a "
            "thread and no way to hand a waiting connection back, so each stream holds one of "
            "gunicorn's threads (a socket also holds simple-websocket's reader thread), and "
            "gunicorn is given a thread more per stream a worker may hold. A client leaving is "
            "seen at once by FastAPI (`http.disconnect`); Flask's waiting thread looks at its "
            "connection every quarter second. Events are gathered from the ORM's flushes and "
            "the token store, published after the commit, and reach other processes through "
            "Redis."
        ),
        fastapi=[
            Ref("fastapi_app/routes/events.py", "account_events"),
            Ref("fastapi_app/routes/events.py", "account_socket"),
            Ref("fastapi_app/streams.py", "converse"),
            Ref("fastapi_app/streams.py", "EventSourceResponse"),
            Ref("fastapi_app/streams.py", "serve_socket"),
        ],
        flask=[
            Ref("flask_app/routes/events.py", "account_events"),
            Ref("flask_app/routes/events.py", "account_socket"),
            Ref("flask_app/streams.py", "converse"),
            Ref("flask_app/streams.py", "event_source_response"),
            Ref("flask_app/streams.py", "serve_socket"),
        ],
        shared=[
            Ref("shared/services/event_streams.py", "EventStream.conversation"),
            Ref("shared/services/event_streams.py", "EventStreams.open"),
            Ref("shared/services/account_events.py", "AccountEvents"),
            Ref("deploy/servers.py", "flask_threads"),
        ],
    ),
    Concern(
        title="Stream places, and a server that stops",
        slug="stream-places",
        notes=(
            "Every stream, and every socket from its handshake on (authenticated or not), "
            "holds one of the process's places, and one client address holds at most its "
            "share: `EventStreams.take_place` answers 503 past the process's places and 429 "
            "past the address's share. FastAPI refuses a socket before accepting it, with "
            "the ASGI denial-response extension; Flask takes the place in a `before_request` "
            "hook and frees it in a `teardown_request` hook, which run however the request "
            "ends. On SIGTERM the server sets a `ServerStop` that it hands the app with each "
            "request (uvicorn's protocol in the ASGI scope's extensions, gunicorn's worker in "
            "the WSGI environ): every open event stream ends at once with `server.stopping`. "
            "A socket closes with 1012 on both: uvicorn closes FastAPI's itself as it stops, "
            "so only Flask's socket listens for the `ServerStop`."
        ),
        fastapi=[
            Ref("fastapi_app/routes/events.py", "account_socket"),
            Ref("fastapi_app/streams.py", "take_socket_place"),
            Ref("fastapi_app/streams.py", "EventSourceResponse"),
            Ref("deploy/uvicorn_protocol.py", "LimitedHttpToolsProtocol.shutdown"),
        ],
        flask=[
            Ref("flask_app/streams.py", "take_socket_place"),
            Ref("flask_app/streams.py", "release_socket_place"),
            Ref("flask_app/streams.py", "ended_with_server"),
            Ref("deploy/gunicorn_worker.py", "with_server_stop"),
        ],
        shared=[
            Ref("shared/services/event_streams.py", "EventStreams.take_place"),
            Ref("shared/web/server_stop.py", "ServerStop"),
        ],
    ),
    Concern(
        title="Public signing key",
        slug="jwks",
        notes=(
            "The same one-liner at the root, outside `/api/v1` (RFC 8615). FastAPI checks the "
            "returned dict against `response_model=JsonWebKeySet` before sending it; Flask "
            "sends the dict as it is, through its JSON provider."
        ),
        fastapi=[Ref("fastapi_app/routes/well_known.py", "jwks")],
        flask=[Ref("flask_app/routes/well_known.py", "jwks")],
        shared=[Ref("shared/security/tokens.py", "SigningKey.jwks")],
    ),
    Concern(
        title="Health",
        slug="health",
        notes=(
            "`/health` is readiness: the database and, when configured, Redis; `/health/live` "
            "is liveness and checks nothing. The probe has an unpooled engine of its own, so "
            "it never waits for a connection behind user requests. The FastAPI probe is "
            "`async` and goes through the reader, off the threadpool, so a burst of logins "
            "cannot make a healthy process look dead. Flask runs the same `SELECT 1` on its "
            "worker thread, where it waits for a free thread like any other request."
        ),
        fastapi=[
            Ref("fastapi_app/routes/health.py", "health"),
            Ref("fastapi_app/routes/health.py", "live"),
        ],
        flask=[
            Ref("flask_app/routes/health.py", "health"),
            Ref("flask_app/routes/health.py", "live"),
        ],
        shared=[
            Ref("shared/services/health.py", "check"),
            Ref("shared/services/health.py", "check_database_async"),
            Ref("shared/infrastructure/db.py", "make_probe_engine"),
        ],
    ),
]
