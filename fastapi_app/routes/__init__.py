"""All routes under one router, mounted at ``/api/v1`` by the factory."""

from fastapi import APIRouter

from fastapi_app.routes import auth, events, health, recovery, users

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(recovery.router)
api_router.include_router(users.router)
api_router.include_router(events.router)
api_router.include_router(health.router)
