# The proxy image of docker-compose: Debian 12's nginx 1.22, prometheus-nginx-exporter 0.11 and
# mtail, the same packages scripts/install-system.sh installs for the local stack.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx prometheus-nginx-exporter mtail \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/nginx-ops/nginx /var/log/nginx-ops
EXPOSE 8080 8081 9113 9114
CMD ["nginx", "-e", "stderr", "-c", "/etc/nginx-ops/nginx.conf"]
