#!/bin/sh
# Creates the Dockerfile's two base images in the local container storage,
# for building the image where Docker Hub cannot be reached but a Debian
# mirror and the Go module proxy can:
#
#	debian:<release>-slim       mmdebstrap --variant=minbase, with the slim
#	                            image's dpkg excludes (no docs, man pages or
#	                            translations), apt settings (no package
#	                            caches kept) and merged /usr
#	golang:<go>-<release>       the same release with a C toolchain, git and
#	                            pkg-config, and Go unpacked at /usr/local/go
#	                            from the golang.org/toolchain module, with the
#	                            official image's GOPATH, PATH and
#	                            GOTOOLCHAIN=local
#
# Both are tagged under docker.io/library/, so a build with --pull=never (or
# missing) uses them. The Go and Debian versions are read from the
# Dockerfile's ARGs. Needs root (mmdebstrap's root mode), mmdebstrap, podman
# and a Go toolchain (it verifies the download against the checksum
# database).
#
# Environment:
#
#	DEBIAN_MIRROR     default http://deb.debian.org/debian
#	SECURITY_MIRROR   default http://deb.debian.org/debian-security
#	EXTRA_CA_CERTS    a PEM file the golang image should trust as well, for a
#	                  TLS-intercepting proxy between the build and the Go
#	                  module proxy; the runtime image never gets it
#	DOCKERFILE        default Dockerfile
#	MMDEBSTRAP_HOOKS  mmdebstrap's hook directory, default
#	                  /usr/share/mmdebstrap/hooks
#
# Usage: scripts/offline-base-images.sh   (from the repository root)
set -eu

dockerfile=${DOCKERFILE:-Dockerfile}
go_version=$(sed -n 's/^ARG GO_VERSION=//p' "$dockerfile")
release=$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$dockerfile")
[ -n "$go_version" ] && [ -n "$release" ] || {
	echo "offline-base-images: no ARG GO_VERSION / DEBIAN_RELEASE in $dockerfile" >&2
	exit 1
}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
arch=$(dpkg --print-architecture)
case $arch in
amd64 | arm64) goarch=$arch ;;
*)
	echo "offline-base-images: no Go toolchain mapping for $arch" >&2
	exit 1
	;;
esac

work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

# The official images' apt settings, which a Dockerfile's "apt-get install
# ... && rm -rf /var/lib/apt/lists/*" relies on to leave no downloaded .deb
# files or package caches in its layer; and no translations. mmdebstrap's
# own apt cleanup runs apt with the chroot's settings, and with these its
# apt-get clean would keep the package caches, so the hook does that
# cleanup itself and installs the settings last.
cat >"$work/apt.conf" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
apt_hook="rm -rf \"\$1\"/var/lib/apt/lists/* \"\$1\"/var/cache/apt/*.bin \"\$1\"/var/cache/apt/archives/*.deb && cp '$work/apt.conf' \"\$1/etc/apt/apt.conf.d/docker-clean\""

# Merged /usr from mmdebstrap's hook, as the official images have it, rather
# than from the usrmerge package, which would bring perl along.
usr_hooks=${MMDEBSTRAP_HOOKS:-/usr/share/mmdebstrap/hooks}/merged-usr

# The sources the official images carry: the release, its updates and its
# security archive, so both stages install the same (current) packages.
set -- \
	"deb $mirror $release main" \
	"deb $mirror $release-updates main" \
	"deb $security $release-security main"

mmdebstrap --variant=minbase --skip=cleanup/apt --hook-dir="$usr_hooks" \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--customize-hook="$apt_hook" \
	"$release" "$work/slim.tar" "$@"
podman import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["bash"]' \
	"$work/slim.tar" "docker.io/library/debian:$release-slim"

# go mod download checks the zip against sum.golang.org and unpacks it; the
# module cache drops the executable bits, which the toolchain needs back.
GOTOOLCHAIN=local GOFLAGS=-modcacherw GOMODCACHE="$work/mod" \
	go mod download "golang.org/toolchain@v0.0.1-go$go_version.linux-$goarch"
goroot="$work/go"
cp -R "$work/mod/golang.org/toolchain@v0.0.1-go$go_version.linux-$goarch" "$goroot"
chmod -R u+w,go-w,a+rX "$goroot"
chmod a+x "$goroot"/bin/* "$goroot"/pkg/tool/*/*

ca_hook=true
if [ -n "${EXTRA_CA_CERTS:-}" ]; then
	cp "$EXTRA_CA_CERTS" "$work/extra-ca.crt"
	ca_hook="cp '$work/extra-ca.crt' \"\$1/usr/local/share/ca-certificates/extra-ca.crt\" && chroot \"\$1\" update-ca-certificates"
fi
mmdebstrap --variant=minbase --skip=cleanup/apt --hook-dir="$usr_hooks" \
	--include=ca-certificates,curl,wget,netbase,git,openssh-client,procps,gcc,g++,libc6-dev,make,pkg-config \
	--customize-hook="cp -R '$goroot' \"\$1/usr/local/go\"" \
	--customize-hook='mkdir -p "$1/go/src" "$1/go/bin" && chmod -R 1777 "$1/go"' \
	--customize-hook="$ca_hook" \
	--customize-hook="$apt_hook" \
	"$release" "$work/golang.tar" "$@"
podman import \
	--change "ENV GOLANG_VERSION=$go_version" \
	--change 'ENV GOTOOLCHAIN=local' \
	--change 'ENV GOPATH=/go' \
	--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'WORKDIR /go' \
	--change 'CMD ["bash"]' \
	"$work/golang.tar" "docker.io/library/golang:$go_version-$release"
