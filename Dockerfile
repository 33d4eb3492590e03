# The coupon service, for docker-compose.ci.yml.
# Its dependencies install offline from wheels built on the host (scripts/wheels.sh puts
# them in images/wheels/): the build needs no network, here or in GitHub Actions. They come
# before the source, so a code change does not reinstall them. The service runs from
# /srv/app as `python -m app`; it needs no install of the project itself.
FROM python:3.11-slim
WORKDIR /srv
COPY images/wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
 && rm -rf /tmp/wheels \
 && useradd --system service
COPY app ./app
USER service
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=3000 PYTHONUNBUFFERED=1
EXPOSE 3000
HEALTHCHECK --interval=2s --timeout=2s --retries=30 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=2).status != 200)"
CMD ["python", "-m", "app"]
