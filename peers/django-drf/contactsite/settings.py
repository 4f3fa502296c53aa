"""The project's settings, built from the contract's configuration (`serve.py` passes them to
`django.conf.settings.configure`: the environment is read once, by the rules every server
shares, before Django loads).

What each setting is for, where it is not Django's default:
- The database is PostgreSQL through psycopg 3 and Django's own pool (`OPTIONS["pool"]`,
  psycopg_pool), DB_POOL_SIZE connections per worker process, all opened at start. A request takes
  one at its first query and gives it back when it finishes (`CONN_MAX_AGE = 0`, which the pool
  requires). Django's psycopg defaults already keep the statement budget: autocommit (no
  transaction statements), no server-side prepared statements.
- No time zone: the contract has no timestamps, and a TIME_ZONE that differs from the server's
  would make Django run `SET TIME ZONE` on each new connection, a statement inside whichever
  request opens it.
- DB_RECYCLE is applied per request by `contacts.database` (see there why not through
  `CONN_HEALTH_CHECKS`).
- Middleware: only CommonMiddleware, for `Content-Length` (HEAD must carry the GET body's);
  `APPEND_SLASH` off, since every pattern takes its optional slash itself. No sessions, auth,
  CSRF or templates: the API has none.
"""

from __future__ import annotations

import math

from psycopg.conninfo import conninfo_to_dict

from bakeoff_contract.config import Settings, Variant


def database(settings: Settings, pool_name: str) -> dict:
    """`DATABASES["default"]` for DATABASE_URL (any parameters of its query string, such as
    `sslmode`, go to OPTIONS as psycopg takes them)."""
    parameters = conninfo_to_dict(settings.database_url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parameters.pop("dbname", ""),
        "USER": parameters.pop("user", ""),
        "PASSWORD": parameters.pop("password", ""),
        "HOST": parameters.pop("host", ""),
        "PORT": parameters.pop("port", ""),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            **parameters,
            "connect_timeout": max(2, math.ceil(settings.db_wait_timeout)),
            "pool": {
                "min_size": settings.db_pool_size,
                "max_size": settings.db_pool_size,
                # How long a request waits for a connection before the contract's 503.
                "timeout": settings.db_wait_timeout,
                # psycopg_pool retries a failed connection with a backoff of up to minutes;
                # giving up after the wait timeout instead lets the next request try again at
                # once, so that service comes back within a second or two of PostgreSQL.
                "reconnect_timeout": settings.db_wait_timeout,
                "name": pool_name,
            },
        },
    }


def django_settings(variant: Variant, settings: Settings) -> dict:
    """Every setting of the project, for `settings.configure(**...)`."""
    return {
        "DEBUG": False,
        # Not a secret: nothing is signed (no sessions, no CSRF tokens), but Django wants one.
        "SECRET_KEY": f"{variant.name}-has-nothing-to-sign",
        "ALLOWED_HOSTS": ["*"],
        "INSTALLED_APPS": ["rest_framework", "contacts"],
        "MIDDLEWARE": ["django.middleware.common.CommonMiddleware"],
        "APPEND_SLASH": False,
        "ROOT_URLCONF": "contactsite.urls",
        "DATABASES": {"default": database(settings, variant.name)},
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "USE_TZ": False,
        "TIME_ZONE": None,
        "USE_I18N": False,
        "REST_FRAMEWORK": {
            "DEFAULT_RENDERER_CLASSES": ["contacts.api.ContractJSONRenderer"],
            "DEFAULT_PARSER_CLASSES": [],
            "DEFAULT_CONTENT_NEGOTIATION_CLASS": "contacts.api.IgnoreAccept",
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            "EXCEPTION_HANDLER": "contacts.api.contract_exception_handler",
        },
        # Django logs every 4xx answer as a warning; the contract's refusals are not events.
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"django.request": {"level": "ERROR"}},
        },
        # The contract's configuration, for the views and `contacts.database`.
        "BAKEOFF": settings,
        "BAKEOFF_VARIANT": variant,
    }
