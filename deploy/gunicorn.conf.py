"""gunicorn settings for the API container, from the same JOBSCHED_*
variables as ``jobsched api`` (api/server.py):

    gunicorn --config deploy/gunicorn.conf.py 'api.app:create_app()'
"""
from api.server import gunicorn_options
from common.settings import Settings

_settings = Settings.from_env()
_settings.check_api_exposure()   # a clear refusal, before any process starts
globals().update(gunicorn_options(_settings))
