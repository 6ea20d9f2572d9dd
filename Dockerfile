FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo_service geo_service
COPY boundaries boundaries
COPY tilecache tilecache
COPY data data
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["geo-service", "serve"]
