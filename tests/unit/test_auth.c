/*
 * test_auth.c: API keys (src/auth). Bootstrap of the first admin key and what a restart
 * keeps, LH_ADMIN_KEY, key creation (shown once, stored only as a keyed hash in a 0600
 * file), checks of good, wrong, empty and revoked keys, the rules on names, roles and
 * revocation, what each role may read, and what listing shows.
 */
#include "testutil.h"

#include "auth/auth.h"
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_KEY "env-admin-key-0123456789abcdef-0123456789" /* ≥ 32 characters */

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    char *dir;     /* the data folder */
    char *secrets; /* <data>/_secrets */
    lh_auth *auth;
} fx;

static fx *fx_new(const char *env_key)
{
    fx *f = lh_xcalloc(1, sizeof(*f));
    f->dir = lh_test_tmpdir("auth");
    f->secrets = lh_path_join(f->dir, "_secrets");
    lh_error err;
    f->auth = lh_auth_open(f->dir, env_key, &err);
    if (!f->auth)
        fail_msg("lh_auth_open: %s", err.message);
    return f;
}

static void fx_free(fx *f)
{
    lh_auth_close(f->auth);
    free(f->secrets);
    lh_test_rmdir(f->dir);
    free(f);
}

static void fx_reopen(fx *f, const char *env_key)
{
    lh_auth_close(f->auth);
    lh_error err;
    f->auth = lh_auth_open(f->dir, env_key, &err);
    if (!f->auth)
        fail_msg("lh_auth_open (restart): %s", err.message);
}

/* Whole content of <data>/_secrets/<name>; caller frees. */
static char *read_secret(fx *f, const char *name)
{
    char *path = lh_path_join(f->secrets, name);
    char *data = NULL;
    size_t len = 0;
    lh_error err;
    if (lh_fs_read_all(path, 1 << 20, &data, &len, &err) != 0)
        fail_msg("%s", err.message);
    free(path);
    return data;
}

static mode_t mode_of(const char *dir, const char *name)
{
    char *path = name ? lh_path_join(dir, name) : lh_xstrdup(dir);
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s failed", path);
    free(path);
    return st.st_mode & 07777;
}

/* The bootstrap key as written in admin.key (without its newline). Caller frees. */
static char *bootstrap_key(fx *f)
{
    char *key = read_secret(f, "admin.key");
    key[strcspn(key, "\n")] = '\0';
    return key;
}

static void assert_key_shape(const char *key)
{
    assert_int_equal(strlen(key), 3 + 64);
    assert_memory_equal(key, "lh_", 3);
    for (const char *p = key + 3; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            fail_msg("key has a non-hex character '%c'", *p);
}

static void assert_checks_as(lh_auth *a, const char *key, const char *name, lh_role role)
{
    lh_error err;
    lh_principal *p = lh_auth_check(a, key, &err);
    if (!p)
        fail_msg("key did not authenticate: %s", err.message);
    assert_string_equal(p->name, name);
    assert_int_equal(p->role, role);
    lh_principal_free(p);
}

static void assert_unauth(lh_auth *a, const char *key)
{
    lh_error err;
    lh_error_clear(&err);
    lh_principal *p = lh_auth_check(a, key, &err);
    assert_null(p);
    assert_int_equal(err.code, LH_EUNAUTH);
}

/* Creates a key and returns it (caller frees). */
static char *create_key(lh_auth *a, const char *name, lh_role role, const char *datasets_json)
{
    json_t *ds = datasets_json ? json_loads(datasets_json, 0, NULL) : NULL;
    char *key = NULL;
    lh_error err;
    int rc = lh_auth_create(a, name, role, NULL, ds, &key, NULL, &err);
    json_decref(ds);
    if (rc != 0)
        fail_msg("lh_auth_create %s: %s", name, err.message);
    return key;
}

/* The listed entry named `name`, borrowed from list. */
static json_t *listed(json_t *list, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (strcmp(lh_json_str(e, "name"), name) == 0)
            return e;
    }
    return NULL;
}

/* ---------------------------------------------------------------- bootstrap */

static void test_bootstrap_writes_admin_key(void **state)
{
    (void)state;
    fx *f = fx_new(NULL);
    assert_int_equal(mode_of(f->secrets, NULL), 0700);
    assert_int_equal(mode_of(f->secrets, "admin.key"), 0600);
    assert_int_equal(mode_of(f->secrets, "key_pepper"), 0600);
    char *key = bootstrap_key(f);
    assert_key_shape(key);
    assert_checks_as(f->auth, key, "admin", LH_ROLE_ADMIN);
    free(key);
    fx_free(f);
}

static void test_restart_keeps_bootstrap_key(void **state)
{
    (void)state;
    fx *f = fx_new(NULL);
    char *key = bootstrap_key(f);
    char *path = lh_path_join(f->secrets, "admin.key");
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);

    fx_reopen(f, NULL);
    assert_int_equal(stat(path, &after), 0);
    /* not rewritten: same file, same content */
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    char *again = bootstrap_key(f);
    assert_string_equal(key, again);
    assert_checks_as(f->auth, key, "admin", LH_ROLE_ADMIN);
    /* exactly one admin in the store */
    json_t *list = lh_auth_list(f->auth);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);

    free(again);
    free(path);
    free(key);
    fx_free(f);
}

/* ---------------------------------------------------------------- LH_ADMIN_KEY */

static void test_env_key_too_short(void **state)
{
    (void)state;
    static const char *const short_keys[] = {"", "x", "0123456789abcdef0123456789abcde"};
    char *dir = lh_test_tmpdir("auth");
    for (size_t i = 0; i < sizeof(short_keys) / sizeof(short_keys[0]); i++) {
        lh_error err;
        lh_error_clear(&err);
        lh_auth *a = lh_auth_open(dir, short_keys[i], &err);
        assert_null(a);
        assert_int_equal(err.code, LH_EINVAL);
        assert_non_null(strstr(err.message, "32"));
        /* the key never appears in the message */
        if (*short_keys[i] && strlen(short_keys[i]) > 1)
            assert_null(strstr(err.message, short_keys[i]));
    }
    /* 32 characters is enough */
    lh_error err;
    lh_auth *a = lh_auth_open(dir, "0123456789abcdef0123456789abcdef", &err);
    assert_non_null(a);
    lh_auth_close(a);
    lh_test_rmdir(dir);
}

static void test_env_key(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    assert_checks_as(f->auth, ENV_KEY, "env-admin", LH_ROLE_ADMIN);
    /* with an env admin there is no bootstrap file */
    char *path = lh_path_join(f->secrets, "admin.key");
    assert_false(lh_fs_exists(path));
    free(path);

    lh_error err;
    lh_error_clear(&err);
    assert_int_equal(lh_auth_revoke(f->auth, "env-admin", &err), LH_EFORBIDDEN);
    assert_int_equal(err.code, LH_EFORBIDDEN);
    assert_checks_as(f->auth, ENV_KEY, "env-admin", LH_ROLE_ADMIN);

    /* never persisted: keys.json (written by a create) holds neither the key nor its name */
    char *k = create_key(f->auth, "ana", LH_ROLE_ANALYST, NULL);
    char *store = read_secret(f, "keys.json");
    assert_null(strstr(store, ENV_KEY));
    assert_null(strstr(store, "env-admin"));
    free(store);
    free(k);

    /* a restart without LH_ADMIN_KEY: the env key is gone, and an admin file appears
     * because the store itself holds no admin key */
    fx_reopen(f, NULL);
    assert_unauth(f->auth, ENV_KEY);
    char *boot = bootstrap_key(f);
    assert_checks_as(f->auth, boot, "admin", LH_ROLE_ADMIN);
    free(boot);
    fx_free(f);
}

/* ---------------------------------------------------------------- create and check */

static void test_create_shows_key_once_and_stores_hash(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    json_t *info = NULL;
    char *key = NULL;
    lh_error err;
    json_t *ds = json_pack("[s]", "people");
    assert_int_equal(lh_auth_create(f->auth, "bot", LH_ROLE_AGENT, NULL, ds, &key, &info, &err), 0);
    json_decref(ds);
    assert_key_shape(key);
    assert_string_equal(lh_json_str(info, "name"), "bot");
    assert_string_equal(lh_json_str(info, "role"), "agent");
    assert_null(json_object_get(info, "key"));
    assert_null(json_object_get(info, "hash"));
    json_decref(info);

    /* keys.json: 0600, the entry and its hash, never the key nor its random part */
    assert_int_equal(mode_of(f->secrets, "keys.json"), 0600);
    char *store = read_secret(f, "keys.json");
    assert_non_null(strstr(store, "\"bot\""));
    assert_non_null(strstr(store, "\"hash\""));
    assert_null(strstr(store, key));
    assert_null(strstr(store, key + 3));
    char part[17];
    snprintf(part, sizeof(part), "%s", key + 3 + 24);
    assert_null(strstr(store, part)); /* not even a slice of it */
    free(store);

    assert_checks_as(f->auth, key, "bot", LH_ROLE_AGENT);
    lh_principal *p = lh_auth_check(f->auth, key, &err);
    assert_non_null(p);
    assert_string_equal(p->datasets[0], "people");
    assert_null(p->datasets[1]);
    lh_principal_free(p);

    /* a second key is a different key; both survive a restart */
    char *key2 = create_key(f->auth, "ana", LH_ROLE_ANALYST, NULL);
    assert_string_not_equal(key, key2);
    fx_reopen(f, ENV_KEY);
    assert_checks_as(f->auth, key, "bot", LH_ROLE_AGENT);
    assert_checks_as(f->auth, key2, "ana", LH_ROLE_ANALYST);
    free(key2);
    free(key);
    fx_free(f);
}

static void test_check_refuses(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *key = create_key(f->auth, "ana", LH_ROLE_ANALYST, NULL);
    char *wrong = lh_xstrdup(key);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
    char *longer = lh_xasprintf("%sa", key);
    const char *const bad[] = {wrong, longer, key + 1, "", "lh_", ENV_KEY "x", "Bearer x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_unauth(f->auth, bad[i]);
    assert_unauth(f->auth, NULL);

    lh_error err;
    assert_int_equal(lh_auth_revoke(f->auth, "ana", &err), 0);
    assert_unauth(f->auth, key);
    /* still revoked after a restart */
    fx_reopen(f, ENV_KEY);
    assert_unauth(f->auth, key);
    assert_int_equal(lh_auth_revoke(f->auth, "ana", &err), LH_ENOTFOUND);
    free(longer);
    free(wrong);
    free(key);
    fx_free(f);
}

/* ---------------------------------------------------------------- creation rules */

typedef struct create_case {
    const char *name;
    lh_role role;
    const char *profile;
    const char *datasets; /* JSON, or NULL */
    int want;
} create_case;

static const create_case create_cases[] = {
    {"ok-1", LH_ROLE_ANALYST, NULL, NULL, 0},
    {"ok.agent_2", LH_ROLE_AGENT, NULL, "[\"people\", \"orders\"]", 0},
    {"ok-agent-3", LH_ROLE_AGENT, "recruiting", "[]", 0},
    {"ok-legal", LH_ROLE_LEGAL, NULL, "[]", 0}, /* an empty list is no grant */
    {"taken", LH_ROLE_ANALYST, NULL, NULL, LH_EEXISTS},
    {"taken", LH_ROLE_AGENT, NULL, NULL, LH_EEXISTS},
    {"an-analyst", LH_ROLE_ANALYST, NULL, "[\"people\"]", LH_EINVAL},
    {"an-admin", LH_ROLE_ADMIN, NULL, "[\"people\"]", LH_EINVAL},
    {"a-legal", LH_ROLE_LEGAL, NULL, "[\"people\"]", LH_EINVAL},
    {"an-analyst2", LH_ROLE_ANALYST, "recruiting", NULL, LH_EINVAL},
    {"bad-datasets", LH_ROLE_AGENT, NULL, "[1]", LH_EINVAL},
    {"bad-datasets2", LH_ROLE_AGENT, NULL, "[\"no such/name\"]", LH_EINVAL},
    {"bad-datasets3", LH_ROLE_AGENT, NULL, "{\"a\": 1}", LH_EINVAL},
    {"bad-profile", LH_ROLE_AGENT, "not a name", NULL, LH_EINVAL},
    /* profiles (issue 10): a slug; a profile or grants, never both */
    {"bad-profile2", LH_ROLE_AGENT, "Upper", NULL, LH_EINVAL},
    {"bad-profile3", LH_ROLE_AGENT, "-lead", NULL, LH_EINVAL},
    {"slug-profile", LH_ROLE_AGENT, "cv-screening-2", NULL, 0},
    {"both", LH_ROLE_AGENT, "recruiting", "[\"people\"]", LH_EINVAL},
    {"profile-empty-grants", LH_ROLE_AGENT, "recruiting", "[]", 0},
    {"", LH_ROLE_ANALYST, NULL, NULL, LH_EINVAL},
    {"has space", LH_ROLE_ANALYST, NULL, NULL, LH_EINVAL},
    {"slash/y", LH_ROLE_ANALYST, NULL, NULL, LH_EINVAL},
    {"x12345678901234567890123456789012345678901234567890123456789012345", LH_ROLE_ANALYST, NULL,
     NULL, LH_EINVAL}, /* 65 characters */
};

static void test_create_rules(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *taken = create_key(f->auth, "taken", LH_ROLE_ANALYST, NULL);
    for (size_t i = 0; i < sizeof(create_cases) / sizeof(create_cases[0]); i++) {
        const create_case *c = &create_cases[i];
        json_t *ds = c->datasets ? json_loads(c->datasets, 0, NULL) : NULL;
        char *key = (char *)"untouched";
        lh_error err;
        lh_error_clear(&err);
        int rc = lh_auth_create(f->auth, c->name, c->role, c->profile, ds, &key, NULL, &err);
        json_decref(ds);
        if (rc != c->want)
            fail_msg("create '%s': expected %s, got %s (%s)", c->name, lh_code_name(c->want),
                     lh_code_name(rc), err.message);
        if (rc == 0) {
            assert_key_shape(key);
            free(key);
        } else {
            assert_null(key); /* no key handed out on failure */
            assert_int_equal(err.code, rc);
        }
    }
    free(taken);
    fx_free(f);
}

/* ---------------------------------------------------------------- revocation */

static void test_last_admin_cannot_be_revoked(void **state)
{
    (void)state;
    fx *f = fx_new(NULL);
    char *boot = bootstrap_key(f);
    lh_error err;
    lh_error_clear(&err);
    assert_int_equal(lh_auth_revoke(f->auth, "admin", &err), LH_ECONFLICT);
    assert_int_equal(err.code, LH_ECONFLICT);
    assert_checks_as(f->auth, boot, "admin", LH_ROLE_ADMIN);

    /* with a second admin, the first may go; then the second is the last one */
    char *second = create_key(f->auth, "admin2", LH_ROLE_ADMIN, NULL);
    assert_int_equal(lh_auth_revoke(f->auth, "admin", &err), 0);
    assert_unauth(f->auth, boot);
    assert_int_equal(lh_auth_revoke(f->auth, "admin2", &err), LH_ECONFLICT);
    assert_checks_as(f->auth, second, "admin2", LH_ROLE_ADMIN);
    assert_int_equal(lh_auth_revoke(f->auth, "nobody", &err), LH_ENOTFOUND);
    assert_int_equal(lh_auth_revoke(f->auth, NULL, &err), LH_ENOTFOUND);

    /* a restart keeps admin2 as the only admin and writes no new bootstrap key */
    char *file_before = read_secret(f, "admin.key");
    fx_reopen(f, NULL);
    char *file_after = read_secret(f, "admin.key");
    assert_string_equal(file_before, file_after);
    assert_checks_as(f->auth, second, "admin2", LH_ROLE_ADMIN);
    assert_unauth(f->auth, boot);
    free(file_after);
    free(file_before);
    free(second);
    free(boot);
    fx_free(f);
}

/* ---------------------------------------------------------------- roles */

typedef struct read_case {
    lh_role role;
    const char *relation;
    bool may;
} read_case;

static const read_case read_cases[] = {
    {LH_ROLE_ADMIN, "people", true},   {LH_ROLE_ADMIN, "anything", true},
    {LH_ROLE_ANALYST, "people", true}, {LH_ROLE_ANALYST, "secret", true},
    {LH_ROLE_AGENT, "people", true},   {LH_ROLE_AGENT, "PEOPLE", true},
    {LH_ROLE_AGENT, "People", true},   {LH_ROLE_AGENT, "orders", true},
    {LH_ROLE_AGENT, "secret", false},  {LH_ROLE_AGENT, "peoplex", false},
    {LH_ROLE_AGENT, "peopl", false},   {LH_ROLE_AGENT, "", false},
    {LH_ROLE_LEGAL, "people", false},  {LH_ROLE_LEGAL, "secret", false},
};

static void test_principal_may_read(void **state)
{
    (void)state;
    char *granted[] = {"people", "Orders", NULL};
    for (size_t i = 0; i < sizeof(read_cases) / sizeof(read_cases[0]); i++) {
        const read_case *c = &read_cases[i];
        lh_principal p = {.name = "k", .role = c->role, .datasets = granted};
        if (lh_principal_may_read(&p, c->relation) != c->may)
            fail_msg("%s reading '%s': expected %s", lh_role_name(c->role), c->relation,
                     c->may ? "yes" : "no");
    }
    /* an agent with no grants reads nothing */
    char *none[] = {NULL};
    lh_principal bare = {.name = "k", .role = LH_ROLE_AGENT, .datasets = none};
    assert_false(lh_principal_may_read(&bare, "people"));
    lh_principal null_list = {.name = "k", .role = LH_ROLE_AGENT, .datasets = NULL};
    assert_false(lh_principal_may_read(&null_list, "people"));
}

static void test_role_names(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        lh_role role;
    } roles[] = {{"admin", LH_ROLE_ADMIN},
                 {"analyst", LH_ROLE_ANALYST},
                 {"agent", LH_ROLE_AGENT},
                 {"legal", LH_ROLE_LEGAL}};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        lh_role r = LH_ROLE_LEGAL;
        assert_int_equal(lh_role_parse(roles[i].text, &r, NULL), 0);
        assert_int_equal(r, roles[i].role);
        assert_string_equal(lh_role_name(roles[i].role), roles[i].text);
    }
    static const char *const bad[] = {"Admin", "root", "", "admin "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lh_role r;
        assert_int_equal(lh_role_parse(bad[i], &r, NULL), LH_EINVAL);
    }
    lh_role r;
    assert_int_equal(lh_role_parse(NULL, &r, NULL), LH_EINVAL);
}

/* ---------------------------------------------------------------- listing */

static void test_list_has_no_secrets_and_tracks_use(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *b = create_key(f->auth, "b-agent", LH_ROLE_AGENT, "[\"people\"]");
    char *a = create_key(f->auth, "a-analyst", LH_ROLE_ANALYST, NULL);

    json_t *list = lh_auth_list(f->auth);
    assert_int_equal(json_array_size(list), 3);
    /* sorted by name */
    assert_string_equal(lh_json_str(json_array_get(list, 0), "name"), "a-analyst");
    assert_string_equal(lh_json_str(json_array_get(list, 1), "name"), "b-agent");
    assert_string_equal(lh_json_str(json_array_get(list, 2), "name"), "env-admin");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        assert_null(json_object_get(e, "key"));
        assert_null(json_object_get(e, "hash"));
        assert_non_null(lh_json_str(e, "created_at"));
        assert_true(json_is_null(json_object_get(e, "last_used_at")));
    }
    char *text = lh_json_dumps(list);
    assert_null(strstr(text, a));
    assert_null(strstr(text, b));
    assert_null(strstr(text, ENV_KEY));
    free(text);
    json_decref(list);

    /* a check stamps last_used_at (in memory at once; on disk at close) */
    assert_checks_as(f->auth, a, "a-analyst", LH_ROLE_ANALYST);
    list = lh_auth_list(f->auth);
    const char *used = lh_json_str(listed(list, "a-analyst"), "last_used_at");
    assert_non_null(used);
    assert_int_equal(strlen(used), strlen("2026-11-24T22:45:01.123Z"));
    assert_true(json_is_null(json_object_get(listed(list, "b-agent"), "last_used_at")));
    char *stamp = lh_xstrdup(used);
    json_decref(list);

    fx_reopen(f, ENV_KEY);
    list = lh_auth_list(f->auth);
    assert_string_equal(lh_json_str(listed(list, "a-analyst"), "last_used_at"), stamp);
    json_decref(list);

    free(stamp);
    free(a);
    free(b);
    fx_free(f);
}

/* ---------------------------------------------------------------- persistence (item 10) */

#ifdef LH_FAULT_INJECTION
/* last_used_at of key `name` as keys.json holds it (caller frees), or NULL. */
static char *stored_last_used(fx *f, const char *name)
{
    char *text = read_secret(f, "keys.json");
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    char *out = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "keys"), i, e)
    {
        if (strcmp(lh_json_str(e, "name"), name) == 0 && lh_json_str(e, "last_used_at"))
            out = lh_xstrdup(lh_json_str(e, "last_used_at"));
    }
    json_decref(doc);
    return out;
}

static char *listed_last_used(lh_auth *a, const char *name)
{
    json_t *list = lh_auth_list(a);
    const char *used = lh_json_str(listed(list, name), "last_used_at");
    char *out = used ? lh_xstrdup(used) : NULL;
    json_decref(list);
    return out;
}

/* A check only marks last_used_at: no file-system call on the request path, whatever the
 * time since the last flush. */
static void test_check_never_writes(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *a = create_key(f->auth, "user", LH_ROLE_ANALYST, NULL);
    lh_fault_reset();
    for (int i = 0; i < 50; i++)
        assert_checks_as(f->auth, a, "user", LH_ROLE_ANALYST);
    for (int op = 0; op < LH_FAULT_OP_COUNT; op++)
        assert_int_equal(lh_fault_calls((lh_fault_op)op), 0);
    char *stored = stored_last_used(f, "user");
    assert_null(stored); /* not yet: the flusher writes it */
    free(a);
    fx_free(f);
}

/* A failed write of last_used_at is reported and kept pending, and a later flush writes
 * it (before, a failed write marked the store clean and the stamp was lost). */
static void test_flush_failure_is_retried(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *a = create_key(f->auth, "user", LH_ROLE_ANALYST, NULL);
    assert_checks_as(f->auth, a, "user", LH_ROLE_ANALYST);
    char *mem = listed_last_used(f->auth, "user");
    assert_non_null(mem);

    lh_error err;
    lh_fault_arm(LH_FAULT_RENAME, 1, 1, EIO);
    assert_int_equal(lh_auth_flush(f->auth, &err), LH_EIO);
    assert_int_equal(lh_fault_fired(), 1);
    assert_null(stored_last_used(f, "user"));
    lh_fault_reset();
    assert_int_equal(lh_auth_flush(f->auth, &err), 0); /* still pending: written now */
    char *disk = stored_last_used(f, "user");
    assert_non_null(disk);
    assert_string_equal(disk, mem);
    free(disk);
    free(mem);
    lh_fault_reset();
    assert_int_equal(lh_auth_flush(f->auth, &err), 0); /* nothing changed: no write */
    assert_int_equal(lh_fault_calls(LH_FAULT_RENAME), 0);

    /* The background flusher: three failures in a row, then success, without any caller
     * asking again. */
    lh_fault_arm(LH_FAULT_RENAME, 1, 3, ENOSPC);
    usleep(2000); /* a later millisecond, so the stamp changes */
    assert_checks_as(f->auth, a, "user", LH_ROLE_ANALYST);
    mem = listed_last_used(f->auth, "user");
    lh_auth_set_flush_interval(f->auth, 20);
    bool written = false;
    for (int i = 0; i < 500 && !written; i++) {
        usleep(20000);
        disk = stored_last_used(f, "user");
        written = disk && strcmp(disk, mem) == 0;
        free(disk);
    }
    assert_true(written);
    assert_int_equal(lh_fault_fired(), 3);
    lh_fault_reset();
    free(mem);
    free(a);
    fx_free(f);
}

/* Keys commit path: a store write that fails before its rename is rolled back (the key does
 * not exist), one whose folder fsync failed is rolled forward (the key works, now and
 * after a restart). Revocation likewise. */
static void test_key_commits_under_faults(void **state)
{
    (void)state;
    fx *f = fx_new(ENV_KEY);
    char *key = NULL;
    lh_error err;
    lh_fault_arm(LH_FAULT_RENAME, 1, 1, EIO);
    assert_int_equal(lh_auth_create(f->auth, "k1", LH_ROLE_ANALYST, NULL, NULL, &key, NULL, &err),
                     LH_EIO);
    assert_null(key);
    lh_fault_arm(LH_FAULT_FSYNC_DIR, 1, 1, EIO);
    assert_int_equal(lh_auth_create(f->auth, "k1", LH_ROLE_ANALYST, NULL, NULL, &key, NULL, &err),
                     0);
    assert_int_equal(lh_fault_fired(), 1);
    lh_fault_reset();
    assert_checks_as(f->auth, key, "k1", LH_ROLE_ANALYST);
    fx_reopen(f, ENV_KEY);
    assert_checks_as(f->auth, key, "k1", LH_ROLE_ANALYST);

    lh_fault_arm(LH_FAULT_WRITE, 1, 1, ENOSPC);
    assert_int_equal(lh_auth_revoke(f->auth, "k1", &err), LH_EIO);
    lh_fault_reset();
    fx_reopen(f, ENV_KEY);
    assert_checks_as(f->auth, key, "k1", LH_ROLE_ANALYST); /* rolled back */
    lh_fault_arm(LH_FAULT_FSYNC_DIR, 1, 1, EIO);
    assert_int_equal(lh_auth_revoke(f->auth, "k1", &err), 0); /* rolled forward */
    lh_fault_reset();
    assert_null(lh_auth_check(f->auth, key, &err));
    fx_reopen(f, ENV_KEY);
    assert_null(lh_auth_check(f->auth, key, &err));
    free(key);
    fx_free(f);
}
/* Every step of key creation and revocation fails once (each hooked operation, each N it
 * reaches); after a restart the store holds exactly what the call reported. */
static void test_every_key_commit_step_may_fail(void **state)
{
    (void)state;
    int cases = 0;
    for (int revoke = 0; revoke <= 1; revoke++) {
        for (int op = 0; op < LH_FAULT_OP_COUNT; op++) {
            for (unsigned nth = 1; nth < 32; nth++) {
                fx *f = fx_new(ENV_KEY);
                char *key = revoke ? create_key(f->auth, "k", LH_ROLE_ANALYST, NULL) : NULL;
                lh_error err;
                lh_fault_arm((lh_fault_op)op, nth, 1, EIO);
                int rc = revoke ? lh_auth_revoke(f->auth, "k", &err)
                                : lh_auth_create(f->auth, "k", LH_ROLE_ANALYST, NULL, NULL, &key,
                                                 NULL, &err);
                bool fired = lh_fault_fired() > 0;
                lh_fault_reset();
                /* the key exists after a successful create or a failed revoke */
                bool exists = revoke ? rc != 0 : rc == 0;
                for (int pass = 0; pass < 2; pass++) {
                    lh_principal *p = key ? lh_auth_check(f->auth, key, &err) : NULL;
                    if ((p != NULL) != exists)
                        fail_msg("%s, %d #%u failed (rc %d): the key %s %s",
                                 revoke ? "revoke" : "create", op, nth, rc,
                                 exists ? "is missing" : "still works",
                                 pass ? "after a restart" : "");
                    lh_principal_free(p);
                    fx_reopen(f, ENV_KEY);
                }
                if (key)
                    free(key);
                fx_free(f);
                if (!fired)
                    break;
                cases++;
            }
        }
    }
    print_message("%d failed steps checked\n", cases);
    assert_true(cases >= 8);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_writes_admin_key),
        cmocka_unit_test(test_restart_keeps_bootstrap_key),
        cmocka_unit_test(test_env_key_too_short),
        cmocka_unit_test(test_env_key),
        cmocka_unit_test(test_create_shows_key_once_and_stores_hash),
        cmocka_unit_test(test_check_refuses),
        cmocka_unit_test(test_create_rules),
        cmocka_unit_test(test_last_admin_cannot_be_revoked),
        cmocka_unit_test(test_principal_may_read),
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_list_has_no_secrets_and_tracks_use),
#ifdef LH_FAULT_INJECTION
        cmocka_unit_test(test_check_never_writes),
        cmocka_unit_test(test_flush_failure_is_retried),
        cmocka_unit_test(test_key_commits_under_faults),
        cmocka_unit_test(test_every_key_commit_step_may_fail),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
