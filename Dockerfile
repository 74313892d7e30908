# syntax=docker/dockerfile:1
#
# Lowrank's image: the server built against OpenBLAS + LAPACKE, on a slim
# Debian with only the shared libraries that binary links. Build from the
# repository root:
#
#	docker build --build-arg VERSION=$(git describe --tags --always) \
#	  --build-arg REVISION=$(git rev-parse HEAD) -t lowrank:dev .
#
# Both stages are the same Debian release (bookworm), so the runtime's glibc
# and OpenBLAS are the ones the binary was linked against.

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
RUN apt-get update \
	&& apt-get install -y --no-install-recommends pkg-config libopenblas-dev liblapacke-dev \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Both Go caches under /go, kept between builds by cache mounts.
ENV GOCACHE=/go/cache
# Modules first, so editing the code does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/go/cache \
	CGO_ENABLED=1 go build -tags openblas -trimpath \
	-ldflags "-s -w -X main.version=${VERSION}" \
	-o /out/lowrank ./cmd/server

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG DEBIAN_RELEASE
# libopenblas0-pthread provides libopenblas.so.0 (and the BLAS/LAPACK that
# liblapacke depends on); liblapacke provides liblapacke.so.3.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libopenblas0-pthread liblapacke \
	&& apt-get clean \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 65532 lowrank \
	&& useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/lowrank --no-create-home --shell /usr/sbin/nologin lowrank \
	&& install -d -o 65532 -g 65532 -m 0750 /var/lib/lowrank
COPY --from=build /out/lowrank /usr/local/bin/lowrank

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lowrank" \
	org.opencontainers.image.description="Low-rank decompositions (SVD, PCA, CP, Tucker) of neural-network weight tensors over HTTP" \
	org.opencontainers.image.source="https://github.com/lowrank/lowrank" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.base.name="debian:${DEBIAN_RELEASE}-slim"

# The root filesystem may be read-only: the server writes only under its
# data directory (SQLite database, blobs, upload spool), a volume.
ENV LOWRANK_DATA_DIR=/var/lib/lowrank \
	LOWRANK_ADDR=:8080
VOLUME ["/var/lib/lowrank"]
EXPOSE 8080
USER 65532:65532
# On SIGTERM the server stops accepting requests, lets running jobs finish
# for up to LOWRANK_SHUTDOWN_GRACE and requeues the rest: give the container
# at least that long (docker stop -t, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/lowrank"]
