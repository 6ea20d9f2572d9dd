FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo_core geo_core
COPY boundaries boundaries
COPY indicators indicators
COPY tilecache tilecache
COPY geo_service geo_service
COPY data data
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["geo-service", "serve"]
