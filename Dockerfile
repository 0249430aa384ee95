# dualtrack: multi-stage build; the runtime image holds only the virtual environment and config.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/dualtrack
COPY pyproject.toml README.md ./
COPY adapter ./adapter
COPY templates ./templates
RUN /opt/dualtrack/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/dualtrack --no-create-home dualtrack \
    && mkdir -p /etc/dualtrack /var/lib/dualtrack \
    && chown dualtrack:dualtrack /var/lib/dualtrack
COPY --from=build /opt/dualtrack /opt/dualtrack
COPY config/docker.yaml /etc/dualtrack/dualtrack.yaml
COPY config/catalog.yaml /etc/dualtrack/catalog.yaml
ENV PATH=/opt/dualtrack/bin:$PATH \
    DUALTRACK_CONFIG=/etc/dualtrack/dualtrack.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/dualtrack
VOLUME ["/var/lib/dualtrack"]
EXPOSE 9095
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/-/ready', timeout=4)"]
# config/docker.yaml takes its secrets from the environment, without defaults: run with
# -e AM_TOKEN -e DUALTRACK_API_TOKEN -e STATUS_PAGE_SECRET -e EVENTS_ROUTING_KEY (or --env-file).
ENTRYPOINT ["dualtrack"]
CMD ["serve", "--config", "/etc/dualtrack/dualtrack.yaml"]
