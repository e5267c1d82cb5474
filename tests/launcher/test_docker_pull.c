/*
 * docker_image_pull against a simulated Engine (src/launcher/docker.c): a
 * real dockerd cannot be made to send a progress line over 1 MiB, so a
 * thread answers the pull on a unix socket with the stream under test.
 */
#include "launcher/docker.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

struct fake_engine {
    int lfd;
    const char *body; /* the pull's answer, after a 200 */
    size_t len;
};

/* Answers one request with 200 and the body, then closes (the end of the stream). */
static void *serve_one(void *arg)
{
    struct fake_engine *fe = arg;
    int fd = accept(fe->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char req[8192];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n";
    /* MSG_NOSIGNAL: the client may hang up before the end of the body */
    if (send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(head) - 1)
        for (size_t off = 0; off < fe->len;) {
            ssize_t n = send(fd, fe->body + off, fe->len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    close(fd);
    return NULL;
}

/* Pulls "busybox" from a fake Engine that answers body; returns the pull's result. */
static int pull_with(const char *body, size_t len, char *err, size_t errsz)
{
    char dir[] = "/tmp/davit-test-pull-XXXXXX", path[128], host[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/engine.sock", dir);
    snprintf(host, sizeof(host), "unix://%s", path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    struct fake_engine fe = {socket(AF_UNIX, SOCK_STREAM, 0), body, len};
    assert_true(fe.lfd >= 0);
    assert_int_equal(bind(fe.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fe.lfd, 1), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_one, &fe), 0);

    struct docker *d = NULL;
    assert_int_equal(docker_open(&d, host, 30000, 0, err, errsz), 0);
    int rc = docker_image_pull(d, "busybox", NULL, 30000, err, errsz);
    docker_close(d);
    pthread_join(t, NULL);
    close(fe.lfd);
    unlink(path);
    rmdir(dir);
    return rc;
}

static void test_a_normal_stream_is_a_pull(void **state)
{
    static const char ok[] = "{\"status\":\"Pulling from library/busybox\"}\n"
                             "{\"status\":\"Status: Downloaded newer image for busybox\"}\n";
    char err[1024] = "";
    (void)state;
    assert_int_equal(pull_with(ok, sizeof(ok) - 1, err, sizeof(err)), 0);
    static const char bad[] = "{\"status\":\"Pulling\"}\n{\"error\":\"manifest unknown\"}\n";
    assert_int_equal(pull_with(bad, sizeof(bad) - 1, err, sizeof(err)), -1);
    assert_string_equal(err, "manifest unknown");
}

/* A progress line over 1 MiB stops the reading: the error that may follow
 * is never seen, so the pull must not pass for a success. */
static void test_simulated_line_over_1_mib_is_an_error(void **state)
{
    static const char tail[] = "\"}\n{\"error\":\"unauthorized\"}\n";
    size_t fill = 2u << 20, len = 12 + fill + sizeof(tail) - 1;
    char *body = malloc(len), err[1024] = "";
    (void)state;
    assert_non_null(body);
    memcpy(body, "{\"status\":\"", 12 - 1);
    memset(body + 11, 'x', fill + 1);
    memcpy(body + 12 + fill, tail, sizeof(tail) - 1);
    assert_int_equal(pull_with(body, len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 1048576 bytes"));
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_normal_stream_is_a_pull),
        cmocka_unit_test(test_simulated_line_over_1_mib_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
