# Debian's redis-server, set up as a redis image is: listening on every address, its
# data in /data.
FROM miren-test/redis-rootfs
RUN mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]
