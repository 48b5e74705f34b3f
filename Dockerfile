# skein's managed-plugin root filesystem, as an image (the same tree plugin-config/build.sh assembles on a host).
#
# With registry access (SDK image, Debian mirrors, NuGet):
#   DOCKER_BUILDKIT=1 docker build -t skein-rootfs .
#   mkdir -p plugin/rootfs && cp plugin-config/config.json plugin/
#   id=$(docker create skein-rootfs) && docker export "$id" | tar -x -C plugin/rootfs && docker rm "$id"
#   docker plugin create skein:latest plugin && docker plugin enable skein:latest
#
# Offline, from a NativeAOT publish output you already have (BuildKit builds only the stages a --target needs,
# and FROM an image present locally never pulls):
#   mkdir -p publish && cp /path/to/published/skein publish/
#   DOCKER_BUILDKIT=1 docker build --target runtime --build-arg SKEIN_PUBLISH=prebuilt -t skein-rootfs .
#
# The image also runs skein directly: docker run --cap-add NET_ADMIN --network host -v /run/docker/plugins:/run/docker/plugins
#   -v /var/lib/skein:/var/lib/skein skein-rootfs   (default command: serve)

# Which stage provides /publish/skein: "build" (compile here) or "prebuilt" (./publish/skein from the context).
ARG SKEIN_PUBLISH=build
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
# The runtime files (glibc, iptables) come from here: Debian bookworm's iptables is the nf_tables build, the
# backend the host's dockerd uses on bookworm (decisions #16).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${SDK_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props ./
COPY src/ src/
RUN case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64) rid=linux-arm64 ;; *) echo "unsupported $(uname -m)" >&2; exit 1 ;; esac \
 && dotnet publish src/Driver -c Release -r "$rid" -o /publish -p:TreatWarningsAsErrors=true -warnaserror

FROM scratch AS prebuilt
# plugin-config/config.json is named only so that this COPY has a source even when ./publish is absent
# (the classic builder runs every stage); ./publish/skein is the one that matters.
COPY plugin-config/config.json publish* /publish/

FROM ${SKEIN_PUBLISH} AS publish

FROM ${BASE_IMAGE} AS os
# iptables (nf_tables build), OpenSSL (loaded by .NET for consul+https / etcd+https) and the CA bundle; a base
# that already has them (an offline build's local base) skips the download.
RUN missing=; \
    command -v xtables-nft-multi >/dev/null || missing="$missing iptables"; \
    ls /usr/lib/*/libssl.so.3 >/dev/null 2>&1 || missing="$missing libssl3"; \
    [ -s /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    if [ -n "$missing" ]; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY plugin-config/assemble-rootfs.sh /usr/local/bin/assemble-rootfs.sh
COPY --from=publish /publish/skein /tmp/skein
RUN bash /usr/local/bin/assemble-rootfs.sh /tmp/skein /rootfs

FROM scratch AS runtime
COPY --from=os /rootfs/ /
ENTRYPOINT ["/usr/bin/skein"]
CMD ["serve"]
