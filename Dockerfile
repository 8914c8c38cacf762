# One image for masters and workers: `flinksched master ...` or `flinksched worker ...`.
# No Flink inside: flinksched talks to Flink clusters over their REST API.
#   docker build -t flinksched:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY common common
COPY scheduler scheduler
COPY worker worker
# The portal's htmx comes from the npm registry, checked against its pinned integrity.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock \
 && pip install --no-cache-dir --no-index --find-links /wheels -r requirements.lock \
 && python -m scheduler.devstack.htmx \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# git: the master's built-in --config-git mode, and the commit of a git-sync checkout.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/flinksched flinksched
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# Only the wheels built from the lock: --no-index means nothing else can be resolved.
RUN pip install --no-cache-dir --no-index --find-links /wheels \
      -r /tmp/requirements.lock flinksched \
 && rm -rf /wheels /tmp/requirements.lock
USER 10001:10001
WORKDIR /home/flinksched
ENV PYTHONUNBUFFERED=1
EXPOSE 9250 9251
ENTRYPOINT ["flinksched"]
CMD ["--help"]
