# The jobsched image: api (gunicorn), dispatcher, worker and migrate.
# BASE_IMAGE: any image with Python 3.11, pip and useradd on PATH (a machine
# without registry access builds from a local one).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY api api
COPY dispatcher dispatcher
COPY worker worker
COPY common common
COPY migrations migrations
COPY jobsched jobsched
COPY deploy deploy
# The package only (no test extras, no compilers: every dependency has a wheel).
RUN pip install . && useradd --system --no-create-home --uid 10001 jobsched
USER jobsched
EXPOSE 8000
ENTRYPOINT ["jobsched"]
CMD ["--help"]
