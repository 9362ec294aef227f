# Debian's static busybox, and nothing else: a shell, httpd, nc, wget for the tests.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
