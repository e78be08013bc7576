# Minimal serving image (fleshed out with the deployment issue). Serving needs no torch.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY modelrepo ./modelrepo
COPY service ./service
COPY training ./training
RUN pip install --no-cache-dir .
COPY models ./models
COPY examples ./examples
EXPOSE 8000
CMD ["python", "-m", "service", "--models", "/app/models", "--host", "0.0.0.0", "--port", "8000"]
