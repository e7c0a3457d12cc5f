FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY api api
COPY dispatcher dispatcher
COPY worker worker
COPY common common
COPY migrations migrations
COPY jobsched jobsched
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["jobsched"]
