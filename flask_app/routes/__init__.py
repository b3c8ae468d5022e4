"""All blueprints under one parent, mounted at ``/api/v1`` by the factory (FastAPI's
``api_router``)."""

from flask import Blueprint

from flask_app.routes import auth, events, health, recovery, users

api_bp = Blueprint("api", __name__)
api_bp.register_blueprint(auth.bp)
api_bp.register_blueprint(recovery.bp)
api_bp.register_blueprint(users.bp)
api_bp.register_blueprint(events.bp)
api_bp.register_blueprint(health.bp)
