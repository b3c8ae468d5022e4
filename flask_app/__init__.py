"""The Flask twin: ``flask --app flask_app run`` or ``gunicorn 'flask_app:create_app()'``."""

from flask_app.app import create_app

__all__ = ["create_app"]
