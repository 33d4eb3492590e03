# The coupon service, for docker-compose.ci.yml.
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY chaos ./chaos
RUN pip install --no-cache-dir . && useradd --system service
USER service
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=2s --timeout=2s --retries=30 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=2).status != 200)"
CMD ["python", "-m", "app"]
