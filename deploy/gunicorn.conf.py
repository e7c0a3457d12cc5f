"""gunicorn settings for the API container, from the same JOBSCHED_*
variables as ``jobsched api`` (api/server.py):

    gunicorn --config deploy/gunicorn.conf.py 'api.app:create_app()'
"""
import os

import gunicorn

bind = f"{os.environ.get('JOBSCHED_API_HOST', '0.0.0.0')}:{os.environ.get('JOBSCHED_API_PORT', '8000')}"
workers = int(os.environ.get("JOBSCHED_API_PROCESSES", "2"))
worker_class = "gthread"
threads = int(os.environ.get("JOBSCHED_API_THREADS", "8"))
graceful_timeout = 10
timeout = 30
loglevel = os.environ.get("JOBSCHED_LOG_LEVEL", "INFO").lower()
accesslog = None   # jobsched logs what matters; the access log would double it
if int(gunicorn.__version__.split(".")[0]) >= 25:
    # One fixed control-socket path per user: replicas on one host would clash.
    control_socket_disable = True
