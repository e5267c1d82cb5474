/*
 * curl_cloexec: every socket libcurl opens for the launcher is made with SOCK_CLOEXEC, so that
 * no child the launcher starts (the run initialization hook, admission.c) inherits a live
 * connection to the server or to the Docker Engine. Setting the flag at socket() time, rather
 * than with fcntl afterwards (CURLOPT_SOCKOPTFUNCTION), leaves no window for a fork in another
 * thread. Set it again after every curl_easy_reset. Header only: two call sites.
 */
#ifndef DAVIT_LAUNCHER_CURL_CLOEXEC_H
#define DAVIT_LAUNCHER_CURL_CLOEXEC_H

#include <curl/curl.h>
#include <sys/socket.h>

static inline curl_socket_t curl_cloexec_open(void *arg, curlsocktype purpose,
                                              struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Makes h open its sockets close-on-exec. */
static inline void curl_cloexec(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, curl_cloexec_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, NULL);
}

#endif
