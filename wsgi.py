"""Entry point for gunicorn: gunicorn wsgi:app"""

from consentsvc import create_app

app = create_app()
