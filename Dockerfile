# ConvServe serving image: no torch, the committed model repository inside (or mounted read-only).
#   docker build -t convserve .                        # GPU build: CUDA 13 + cuDNN 9 from PyPI wheels
#   docker build --build-arg RUNTIME=cpu -t convserve:cpu .   # the small CPU build
# A GPU host needs only the NVIDIA driver and the NVIDIA container toolkit (no CUDA base image).
ARG PYTHON=python:3.11-slim

FROM ${PYTHON} AS build
ARG RUNTIME=gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY convserve ./convserve
COPY modelrepo ./modelrepo
COPY service ./service
COPY training ./training
RUN /opt/venv/bin/pip install ".[${RUNTIME}]"

FROM ${PYTHON}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    CONVSERVE_MODELS_DIR=/app/models CONVSERVE_EXAMPLES_DIR=/app/examples
RUN useradd --system --uid 10001 --home-dir /app convserve
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root models ./models
COPY --chown=root:root examples ./examples
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2)"]
CMD ["python", "-m", "service", "--models", "/app/models", "--host", "0.0.0.0", "--port", "8000"]
