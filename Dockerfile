# broker-hub: one image for every role (web, fetcher, deliverer, poller, migrate, run).
# Build: docker build -t broker-hub .     Run: docker run broker-hub <role>
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker_hub broker_hub
COPY web web
COPY workers workers
COPY cli cli
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --home /var/lib/broker-hub --create-home broker-hub
COPY --from=build /install /usr/local
USER broker-hub
WORKDIR /var/lib/broker-hub
ENV PYTHONUNBUFFERED=1 \
    HUB_BIND=0.0.0.0:8080
EXPOSE 8080 9101 9102 9104
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["broker-hub"]
CMD ["web"]
