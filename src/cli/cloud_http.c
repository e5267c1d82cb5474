/* The libcurl setup, remote-text cleaning and times the cloud clients share (cloud_http.h). */
#include "cli/cloud_http.h"

#include "common/dbuf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static size_t to_dbuf(char *p, size_t size, size_t n, void *ud)
{
    return dbuf_add(ud, p, size * n) < 0 ? 0 : size * n;
}

CURL *cloud_http_easy(const char *url, const char *ca_file, long connect_s, long total_s,
                      struct dbuf *resp)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_s);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, total_s);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, to_dbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    if (ca_file && *ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    return curl;
}

void cloud_http_copy_clean(char *out, size_t size, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < size; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[i] = '\0';
}

/* "…Z" or "…+00:00" after whole seconds and an optional fraction: UTC ms, or -1. */
static int64_t utc_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    int64_t ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            if (digits++ < 3)
                ms = ms * 10 + (*rest - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}

int64_t cloud_http_time(const char *s)
{
    char buf[64];
    size_t n = s ? strlen(s) : 0;
    if (n < 7 || n >= sizeof(buf))
        return -1;
    const char *off = s + n - 6;
    if ((off[0] != '+' && off[0] != '-') || off[3] != ':')
        return utc_time(s);
    int hh = (off[1] - '0') * 10 + (off[2] - '0'), mm = (off[4] - '0') * 10 + (off[5] - '0');
    if (off[1] < '0' || off[1] > '9' || off[2] < '0' || off[2] > '9' || off[4] < '0' ||
        off[4] > '9' || off[5] < '0' || off[5] > '9' || hh > 23 || mm > 59)
        return -1;
    snprintf(buf, sizeof(buf), "%.*sZ", (int)(n - 6), s);
    int64_t t = utc_time(buf);
    if (t < 0)
        return -1;
    int64_t shift = ((int64_t)hh * 60 + mm) * 60 * 1000;
    return off[0] == '+' ? t - shift : t + shift;
}
