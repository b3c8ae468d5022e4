"""The side-by-side reader: each concern's FastAPI and Flask code next to each other."""
