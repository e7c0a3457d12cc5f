"""gunicorn settings for the API container, from the same JOBSCHED_*
variables as ``jobsched api`` (api/server.py):

    gunicorn --config deploy/gunicorn.conf.py 'api.app:create_app()'
"""
from api.server import gunicorn_options
from common.settings import Settings

globals().update(gunicorn_options(Settings.from_env()))
