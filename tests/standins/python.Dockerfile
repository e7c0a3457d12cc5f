# Stand-in for python:3.11-slim, built from Debian packages: bookworm's
# Python 3.11 laid out as the official image has it (python and pip on PATH,
# pip may install into the system).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-pip python3-venv \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python
# pip reaches PyPI through this network's TLS inspection with the host's CA bundle.
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
