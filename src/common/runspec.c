#include "common/runspec.h"

#include "common/runrules.h"

#include "common/duration.h"
#include "common/spool.h"

#include <errno.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Validation walks the JSON by hand rather than with one json_unpack_ex
 * format, so that every error names the exact field ("phases[1].timeout")
 * and says what is wrong with it in the project's words.
 */

#define FIELD_MAX 256

static int fail_at(char *err, size_t errsz, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(char *err, size_t errsz, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field && *field)
        snprintf(err, errsz, "%s: %s", field, msg);
    else
        snprintf(err, errsz, "%s", msg);
    return -1;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/*
 * "field.key" into f, for an error about key; just "field" when the key is
 * not plain (1 to 64 of [A-Za-z0-9_-]): a key may hold anything, a terminal
 * escape included, and the server's errors never echo a request
 * (docs/security.md; found by fuzz/fuzz_api_body.c).
 */
static void field_key(char *f, size_t size, const char *field, const char *key)
{
    size_t n = strlen(key);
    int plain = n >= 1 && n <= 64;
    for (size_t i = 0; plain && i < n; i++)
        plain = isalnum((unsigned char)key[i]) || key[i] == '_' || key[i] == '-';
    if (plain)
        snprintf(f, size, "%s%s%s", field, *field ? "." : "", key);
    else
        snprintf(f, size, "%s", field);
}

/* Rejects every key of obj that is not in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *allowed, const char *field, char *err,
                      size_t errsz)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = 1;
        if (!ok) {
            char f[FIELD_MAX];
            field_key(f, sizeof(f), field, key);
            return fail_at(err, errsz, f, "unknown field");
        }
    }
    return 0;
}

static int want_type(const json_t *v, json_type type, const char *what, const char *field,
                     char *err, size_t errsz)
{
    if (json_typeof(v) == type)
        return 0;
    return fail_at(err, errsz, field, "expected %s, got %s", what, json_kind(v));
}

/* A string with no NUL byte inside (JSON allows "\u0000"). */
static int plain_string(const json_t *v, size_t max, const char *field, char *err, size_t errsz)
{
    if (want_type(v, JSON_STRING, "a string", field, err, errsz) < 0)
        return -1;
    size_t n = json_string_length(v);
    if (strlen(json_string_value(v)) != n)
        return fail_at(err, errsz, field, "must not contain a NUL byte");
    if (n > max)
        return fail_at(err, errsz, field, "longer than %zu bytes", max);
    return 0;
}

static int parse_duration_field(const json_t *v, int64_t *ms, const char *field, char *err,
                                size_t errsz)
{
    if (want_type(v, JSON_STRING, "a duration string like \"90s\"", field, err, errsz) < 0)
        return -1;
    if (duration_parse(json_string_value(v), ms) < 0)
        return fail_at(err, errsz, field, "not a duration: \"%s\"", json_string_value(v));
    return 0;
}

static int parse_list(const json_t *v, struct run_list *list, const char *field, char *err,
                      size_t errsz)
{
    if (want_type(v, JSON_ARRAY, "an array of strings", field, err, errsz) < 0)
        return -1;
    size_t n = json_array_size(v);
    if (n > RUNSPEC_MAX_COMMANDS)
        return fail_at(err, errsz, field, "more than %d commands", RUNSPEC_MAX_COMMANDS);
    if (n == 0)
        return 0;
    list->items = calloc(n, sizeof(char *));
    if (!list->items)
        return fail_at(err, errsz, field, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char f[FIELD_MAX];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        const json_t *c = json_array_get(v, i);
        if (plain_string(c, RUNSPEC_MAX_COMMAND, f, err, errsz) < 0)
            return -1;
        list->items[i] = strdup(json_string_value(c));
        if (!list->items[i])
            return fail_at(err, errsz, f, "out of memory");
        list->n = i + 1;
    }
    return 0;
}

static int parse_phase(const json_t *v, struct run_phase *ph, size_t idx, char *err, size_t errsz)
{
    static const char *const keys[] = {"name", "commands", "before", "after", "timeout", NULL};
    char field[32], f[FIELD_MAX];
    snprintf(field, sizeof(field), "phases[%zu]", idx);

    if (want_type(v, JSON_OBJECT, "an object", field, err, errsz) < 0 ||
        check_keys(v, keys, field, err, errsz) < 0)
        return -1;

    const json_t *name = json_object_get(v, "name");
    snprintf(f, sizeof(f), "%s.name", field);
    if (!name)
        return fail_at(err, errsz, f, "required");
    if (plain_string(name, SPOOL_PHASE_MAX, f, err, errsz) < 0)
        return -1;
    if (!spool_phase_name_ok(json_string_value(name)))
        return fail_at(err, errsz, f, "must be 1 to 64 of [A-Za-z0-9_.-]: \"%s\"",
                       json_string_value(name));
    snprintf(ph->name, sizeof(ph->name), "%s", json_string_value(name));

    static const char *const lists[] = {"before", "commands", "after"};
    struct run_list *dst[] = {&ph->before, &ph->commands, &ph->after};
    for (size_t i = 0; i < 3; i++) {
        const json_t *l = json_object_get(v, lists[i]);
        snprintf(f, sizeof(f), "%s.%s", field, lists[i]);
        if (l && parse_list(l, dst[i], f, err, errsz) < 0)
            return -1;
    }

    const json_t *t = json_object_get(v, "timeout");
    snprintf(f, sizeof(f), "%s.timeout", field);
    if (t && parse_duration_field(t, &ph->timeout_ms, f, err, errsz) < 0)
        return -1;
    return 0;
}

static int parse_vars(const json_t *v, struct runspec_var **out, size_t *n_out, size_t *total,
                      size_t max_value, const char *field, char *err, size_t errsz)
{
    if (want_type(v, JSON_OBJECT, "an object of strings", field, err, errsz) < 0)
        return -1;
    size_t n = json_object_size(v);
    *total += n;
    if (*total > RUNSPEC_MAX_VARS)
        return fail_at(err, errsz, field, "more than %d variables in env and secrets",
                       RUNSPEC_MAX_VARS);
    if (n == 0)
        return 0;
    *out = calloc(n, sizeof(**out));
    if (!*out)
        return fail_at(err, errsz, field, "out of memory");

    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach((json_t *)v, key, val)
    {
        char f[FIELD_MAX];
        field_key(f, sizeof(f), field, key);
        if (!runrules_var_name_ok(key))
            return fail_at(err, errsz, f, "not a variable name (1 to %d of [A-Za-z_][A-Za-z0-9_]*)",
                           RUNSPEC_MAX_NAME);
        if (strncmp(key, "DAVIT_", 6) == 0)
            return fail_at(err, errsz, f, "names beginning with DAVIT_ are reserved");
        if (plain_string(val, max_value, f, err, errsz) < 0)
            return -1;
        (*out)[i].name = strdup(key);
        (*out)[i].value = strdup(json_string_value(val));
        *n_out = ++i;
        if (!(*out)[i - 1].name || !(*out)[i - 1].value)
            return fail_at(err, errsz, f, "out of memory");
    }
    return 0;
}

static int parse_user(const json_t *v, char *user, size_t size, char *err, size_t errsz)
{
    if (plain_string(v, size - 1, "user", err, errsz) < 0)
        return -1;
    const char *s = json_string_value(v);
    if (runrules_user_parse(s, NULL, NULL) == 0) {
        snprintf(user, size, "%s", s);
        return 0;
    }
    return fail_at(err, errsz, "user", "expected a numeric UID or UID:GID, like \"1983\": \"%s\"",
                   s);
}

static int parse_limits(const json_t *v, struct runspec *spec, char *err, size_t errsz)
{
    static const char *const keys[] = {"memory_mb", "cpus", "pids", NULL};
    if (want_type(v, JSON_OBJECT, "an object", "limits", err, errsz) < 0 ||
        check_keys(v, keys, "limits", err, errsz) < 0)
        return -1;

    const json_t *m = json_object_get(v, "memory_mb");
    if (m) {
        if (want_type(m, JSON_INTEGER, "an integer", "limits.memory_mb", err, errsz) < 0)
            return -1;
        /* Docker refuses less than 6 MiB; 16 TiB is far above any machine. */
        if (json_integer_value(m) < 6 || json_integer_value(m) > (16LL << 20))
            return fail_at(err, errsz, "limits.memory_mb", "must be from 6 to %lld: %lld",
                           16LL << 20, (long long)json_integer_value(m));
        spec->memory_mb = json_integer_value(m);
    }
    const json_t *c = json_object_get(v, "cpus");
    if (c) {
        if (!json_is_number(c))
            return fail_at(err, errsz, "limits.cpus", "expected a number, got %s", json_kind(c));
        double cpus = json_number_value(c);
        if (!(cpus >= 0.01 && cpus <= 1024))
            return fail_at(err, errsz, "limits.cpus", "must be from 0.01 to 1024: %g", cpus);
        spec->cpus = cpus;
    }
    const json_t *p = json_object_get(v, "pids");
    if (p) {
        if (want_type(p, JSON_INTEGER, "an integer", "limits.pids", err, errsz) < 0)
            return -1;
        if (json_integer_value(p) < 1 || json_integer_value(p) > 4194304)
            return fail_at(err, errsz, "limits.pids", "must be from 1 to 4194304: %lld",
                           (long long)json_integer_value(p));
        spec->pids = json_integer_value(p);
    }
    return 0;
}

static int parse_timeouts(const json_t *v, struct runspec *spec, char *err, size_t errsz)
{
    static const char *const keys[] = {"run", "no_output", "kill_grace", NULL};
    int64_t *dst[] = {&spec->run_timeout_ms, &spec->output_timeout_ms, &spec->kill_grace_ms};

    if (want_type(v, JSON_OBJECT, "an object", "timeouts", err, errsz) < 0 ||
        check_keys(v, keys, "timeouts", err, errsz) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        const json_t *t = json_object_get(v, keys[i]);
        char f[FIELD_MAX];
        snprintf(f, sizeof(f), "timeouts.%s", keys[i]);
        if (t && parse_duration_field(t, dst[i], f, err, errsz) < 0)
            return -1;
    }
    return 0;
}

/* The image reference: non-empty, printable, no spaces; Docker checks the rest. */
static int parse_image(const json_t *v, struct runspec *spec, char *err, size_t errsz)
{
    if (plain_string(v, 512, "image", err, errsz) < 0)
        return -1;
    const char *s = json_string_value(v);
    if (!*s)
        return fail_at(err, errsz, "image", "must not be empty");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return fail_at(err, errsz, "image", "not an image reference: \"%s\"", s);
    spec->image = strdup(s);
    if (!spec->image)
        return fail_at(err, errsz, "image", "out of memory");
    return 0;
}

/* A string of exactly n lowercase hex digits. */
static int hex_field(const json_t *v, size_t n, const char *field, char *err, size_t errsz)
{
    const char *s = json_string_value(v);
    size_t i = 0;
    while (s && i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
        i++;
    if (!s || i != n || s[n])
        return fail_at(err, errsz, field, "must be %zu lowercase hex digits", n);
    return 0;
}

/*
 * The shape of "sealed" (docs/secrets.md): only the launcher can open it, so the checks here are
 * the ones that need no key. Its secrets count with env and secrets.
 */
static int parse_sealed(const json_t *v, struct runspec *spec, size_t *total, char *err,
                        size_t errsz)
{
    static const char *const keys[] = {"alg", "key_id", "key", "secrets", NULL};
    if (want_type(v, JSON_OBJECT, "an object", "sealed", err, errsz) < 0 ||
        check_keys(v, keys, "sealed", err, errsz) < 0)
        return -1;
    const char *alg = json_string_value(json_object_get(v, "alg"));
    if (!alg || (strcmp(alg, RUNSPEC_SEAL_ALG_RSA) != 0 && strcmp(alg, RUNSPEC_SEAL_ALG_EC) != 0))
        return fail_at(err, errsz, "sealed.alg", "must be \"%s\" or \"%s\"", RUNSPEC_SEAL_ALG_RSA,
                       RUNSPEC_SEAL_ALG_EC);
    if (hex_field(json_object_get(v, "key_id"), 64, "sealed.key_id", err, errsz) < 0)
        return -1;
    const json_t *key = json_object_get(v, "key");
    if (!key)
        return fail_at(err, errsz, "sealed.key", "required");
    if (plain_string(key, 4096, "sealed.key", err, errsz) < 0)
        return -1;
    const json_t *boxes = json_object_get(v, "secrets");
    if (!boxes)
        return fail_at(err, errsz, "sealed.secrets", "required");
    /* base64 of IV, value and tag */
    return parse_vars(boxes, &spec->sealed, &spec->n_sealed, total,
                      (RUNSPEC_MAX_VALUE + 28 + 2) / 3 * 4, "sealed.secrets", err, errsz);
}

int runspec_from_json(const json_t *obj, struct runspec **out, char *err, size_t errsz)
{
    static const char *const keys[] = {"image",     "phases",    "env",    "secrets",
                                       "timeouts",  "user",      "limits", "sealed",
                                       "run_nonce", "signature", NULL};
    struct runspec *spec = NULL;
    size_t total_vars = 0;

    if (!obj || !json_is_object(obj)) {
        fail_at(err, errsz, NULL, "a run spec must be a JSON object, got %s",
                obj ? json_kind(obj) : "nothing");
        goto fail;
    }
    if (check_keys(obj, keys, "", err, errsz) < 0)
        goto fail;
    spec = calloc(1, sizeof(*spec));
    if (!spec) {
        fail_at(err, errsz, NULL, "out of memory");
        goto fail;
    }
    spec->run_timeout_ms = RUNSPEC_DEFAULT_RUN_TIMEOUT_MS;
    spec->output_timeout_ms = RUNSPEC_DEFAULT_OUTPUT_TIMEOUT_MS;
    spec->kill_grace_ms = RUNSPEC_DEFAULT_KILL_GRACE_MS;

    /* No image: the launcher's DAVIT_DEFAULT_RUNNER_IMAGE, or a refusal (admission.h). */
    const json_t *v = json_object_get(obj, "image");
    if (v && parse_image(v, spec, err, errsz) < 0)
        goto fail;

    v = json_object_get(obj, "phases");
    if (!v) {
        fail_at(err, errsz, "phases", "required");
        goto fail;
    }
    if (want_type(v, JSON_ARRAY, "an array", "phases", err, errsz) < 0)
        goto fail;
    size_t n = json_array_size(v);
    if (n < 1 || n > RUNSPEC_MAX_PHASES) {
        fail_at(err, errsz, "phases", "must hold 1 to %d phases, not %zu", RUNSPEC_MAX_PHASES, n);
        goto fail;
    }
    spec->phases = calloc(n, sizeof(*spec->phases));
    if (!spec->phases) {
        fail_at(err, errsz, "phases", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        spec->n_phases = i + 1;
        if (parse_phase(json_array_get(v, i), &spec->phases[i], i, err, errsz) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(spec->phases[j].name, spec->phases[i].name) == 0) {
                char f[FIELD_MAX];
                snprintf(f, sizeof(f), "phases[%zu].name", i);
                fail_at(err, errsz, f, "\"%s\" is already the name of phases[%zu]",
                        spec->phases[i].name, j);
                goto fail;
            }
        }
    }

    if ((v = json_object_get(obj, "env")) && parse_vars(v, &spec->env, &spec->n_env, &total_vars,
                                                        RUNSPEC_MAX_VALUE, "env", err, errsz) < 0)
        goto fail;
    if ((v = json_object_get(obj, "secrets")) &&
        parse_vars(v, &spec->secrets, &spec->n_secrets, &total_vars, RUNSPEC_MAX_VALUE, "secrets",
                   err, errsz) < 0)
        goto fail;
    if ((v = json_object_get(obj, "run_nonce"))) {
        if (hex_field(v, RUNSPEC_NONCE_LEN, "run_nonce", err, errsz) < 0)
            goto fail;
        snprintf(spec->run_nonce, sizeof(spec->run_nonce), "%s", json_string_value(v));
    }
    if ((v = json_object_get(obj, "sealed"))) {
        if (json_object_get(obj, "secrets")) {
            fail_at(err, errsz, "sealed", "give secrets or sealed, not both");
            goto fail;
        }
        if (!spec->run_nonce[0]) {
            fail_at(err, errsz, "run_nonce", "required with sealed (the secrets are bound to it)");
            goto fail;
        }
        if (parse_sealed(v, spec, &total_vars, err, errsz) < 0)
            goto fail;
    }
    if ((v = json_object_get(obj, "signature")) &&
        plain_string(v, 128, "signature", err, errsz) < 0)
        goto fail;
    if ((v = json_object_get(obj, "timeouts")) && parse_timeouts(v, spec, err, errsz) < 0)
        goto fail;
    if ((v = json_object_get(obj, "user")) &&
        parse_user(v, spec->user, sizeof(spec->user), err, errsz) < 0)
        goto fail;
    if ((v = json_object_get(obj, "limits")) && parse_limits(v, spec, err, errsz) < 0)
        goto fail;

    *out = spec;
    return 0;

fail:
    runspec_free(spec);
    return -1;
}

int runspec_parse(const char *text, size_t len, struct runspec **out, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        snprintf(err, errsz, "not valid JSON: line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    int rc = runspec_from_json(obj, out, err, errsz);
    json_decref(obj);
    return rc;
}

static json_t *list_to_json(const struct run_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        if (json_array_append_new(a, json_string(l->items[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *vars_to_json(const struct runspec_var *vars, size_t n, int mask)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        if (json_object_set_new(o, vars[i].name, json_string(mask ? "***" : vars[i].value)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* json_object_set_new that remembers a failure in *ok instead of returning it. */
static void set(json_t *o, const char *key, json_t *v, int *ok)
{
    if (!v || json_object_set_new(o, key, v) < 0)
        *ok = 0;
}

json_t *runspec_to_json(const struct runspec *spec, int with_secrets)
{
    char buf[32];
    int ok = 1;
    json_t *o = json_object();
    json_t *phases = json_array();
    if (!o || !phases) {
        json_decref(o);
        json_decref(phases);
        return NULL;
    }
    if (spec->image)
        set(o, "image", json_string(spec->image), &ok);
    set(o, "phases", phases, &ok);
    for (size_t i = 0; i < spec->n_phases; i++) {
        const struct run_phase *ph = &spec->phases[i];
        json_t *p = json_object();
        if (!p || json_array_append_new(phases, p) < 0) {
            ok = 0;
            break;
        }
        set(p, "name", json_string(ph->name), &ok);
        if (ph->before.n)
            set(p, "before", list_to_json(&ph->before), &ok);
        set(p, "commands", list_to_json(&ph->commands), &ok);
        if (ph->after.n)
            set(p, "after", list_to_json(&ph->after), &ok);
        if (ph->timeout_ms)
            set(p, "timeout", json_string(duration_format(ph->timeout_ms, buf, sizeof(buf))), &ok);
    }
    if (spec->n_env)
        set(o, "env", vars_to_json(spec->env, spec->n_env, 0), &ok);
    if (spec->n_secrets)
        set(o, "secrets", vars_to_json(spec->secrets, spec->n_secrets, !with_secrets), &ok);

    json_t *t = json_object();
    set(o, "timeouts", t, &ok);
    if (t) {
        set(t, "run", json_string(duration_format(spec->run_timeout_ms, buf, sizeof(buf))), &ok);
        set(t, "no_output", json_string(duration_format(spec->output_timeout_ms, buf, sizeof(buf))),
            &ok);
        set(t, "kill_grace", json_string(duration_format(spec->kill_grace_ms, buf, sizeof(buf))),
            &ok);
    }
    if (spec->user[0])
        set(o, "user", json_string(spec->user), &ok);
    if (spec->memory_mb || spec->cpus > 0 || spec->pids) {
        json_t *l = json_object();
        set(o, "limits", l, &ok);
        if (l && spec->memory_mb)
            set(l, "memory_mb", json_integer(spec->memory_mb), &ok);
        if (l && spec->cpus > 0)
            set(l, "cpus", json_real(spec->cpus), &ok);
        if (l && spec->pids)
            set(l, "pids", json_integer(spec->pids), &ok);
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void list_free(struct run_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static void vars_free(struct runspec_var *vars, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(vars[i].name);
        if (vars[i].value) {
            /* Secrets should not linger in freed heap memory. */
            explicit_bzero(vars[i].value, strlen(vars[i].value));
            free(vars[i].value);
        }
    }
    free(vars);
}

void runspec_free(struct runspec *spec)
{
    if (!spec)
        return;
    free(spec->image);
    for (size_t i = 0; i < spec->n_phases; i++) {
        list_free(&spec->phases[i].before);
        list_free(&spec->phases[i].commands);
        list_free(&spec->phases[i].after);
    }
    free(spec->phases);
    vars_free(spec->env, spec->n_env);
    vars_free(spec->secrets, spec->n_secrets);
    vars_free(spec->sealed, spec->n_sealed);
    free(spec);
}
