/*
 * retention.c: `lakehouse retention-sweep [--apply] [--as-of RFC3339] [--storage-root DIR]
 * [--data DIR]` (issue 12 item 4; docs/AUDIT.md "Retention sweep"). Offline, like
 * `lakehouse audit verify`: it reads the data folder directly (no server, no API key) and
 * changes no manifest. The findings go to stderr; --apply also writes the report,
 * _catalog/subjects/_retention_sweep_<date>.jsonl, and prints its path; --json prints the
 * report's lines on stdout. The rules are compliance/retention.c's.
 */
#include "cli/cli.h"
#include "compliance/compliance.h"

#include <stdlib.h>
#include <string.h>

const lh_cli_flag_spec lh_cli_retention_flags[] = {
    {"--apply", false}, {"--as-of", true}, {"--storage-root", true},
    {"--data", true},   {NULL, false},
};

/* One finding for people: "W-1 (Active): general_pii due (until ..., basis ...)". */
static void print_subject(const json_t *s)
{
    fprintf(stderr, "%s (%s):", lh_json_str(s, "candidate_id"),
            lh_json_str(s, "status") ? lh_json_str(s, "status") : "?");
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(s, "due"), i, d)
    {
        fprintf(stderr, "%s %s due since %s (%s)", i ? ";" : "", lh_json_str(d, "clock"),
                lh_json_str(d, "until"), lh_json_str(d, "basis"));
    }
    json_array_foreach(json_object_get(s, "warnings"), i, d)
    {
        fprintf(stderr, "%s warning %s", i || json_array_size(json_object_get(s, "due")) ? ";" : "",
                json_string_value(d));
    }
    size_t files = json_array_size(json_object_get(s, "photo_files"));
    if (files)
        fprintf(stderr, "; %zu photo %s under the storage root", files,
                lh_cli_plural((long long)files, "file", "files"));
    fprintf(stderr, "\n");
}

int lh_cli_retention_sweep(const lh_cli_args *args)
{
    lh_config cfg;
    lh_error err;
    json_t *report = NULL;
    char *path = NULL;
    int rc = LH_CLI_EXIT_ERROR;
    bool apply = lh_cli_has_flag(args, "--apply");
    const char *data = lh_cli_flag(args, "--data");
    memset(&cfg, 0, sizeof(cfg));
    if (lh_config_load(&cfg, &err) != 0 || (data && lh_config_set_data_dir(&cfg, data, &err))) {
        fprintf(stderr, "error: %s: %s\n", lh_error_kind(&err), err.message);
        goto out;
    }
    if (!lh_fs_exists(cfg.data_dir)) {
        fprintf(stderr, "error: no data folder at '%s' (--data DIR or LH_DATA)\n", cfg.data_dir);
        goto out;
    }
    const char *root = lh_cli_flag(args, "--storage-root");
    lh_retention_opts o = {.data_dir = cfg.data_dir,
                           .as_of = lh_cli_flag(args, "--as-of"),
                           .storage_root = root ? root : cfg.biometric_root};
    if (!(report = lh_retention_sweep(&o, &err))) {
        fprintf(stderr, "error: %s: %s\n", lh_error_kind(&err), err.message);
        rc = err.code == LH_EINVAL ? LH_CLI_EXIT_USAGE : LH_CLI_EXIT_ERROR;
        goto out;
    }
    const json_t *sum = json_object_get(report, "summary");
    fprintf(stderr, "retention sweep as of %s%s\n", lh_json_str(sum, "as_of"),
            apply ? "" : " (dry run: nothing written; --apply writes the report)");
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(report, "subjects"), i, s) print_subject(s);
    const json_t *skipped = json_object_get(sum, "skipped");
    long long checked = lh_json_int(sum, "subjects_checked", 0),
              due = lh_json_int(sum, "subjects_due", 0);
    fprintf(stderr, "%lld %s checked, %lld due; skipped %lld Erased, %lld RetentionExpired",
            checked, lh_cli_plural(checked, "subject", "subjects"), due,
            (long long)lh_json_int(skipped, "Erased", 0),
            (long long)lh_json_int(skipped, "RetentionExpired", 0));
    size_t bad = json_array_size(json_object_get(sum, "unreadable_manifests"));
    if (bad)
        fprintf(stderr, "; %zu unreadable %s", bad,
                lh_cli_plural((long long)bad, "manifest", "manifests"));
    fprintf(stderr, "%s\n", o.storage_root ? "" : "; photo files not checked (--storage-root)");
    if (args->json) {
        char *text = lh_retention_render(report);
        fputs(text, stdout);
        free(text);
    }
    if (apply) {
        if (lh_retention_write(cfg.data_dir, report, &path, &err) != 0) {
            fprintf(stderr, "error: %s: %s\n", lh_error_kind(&err), err.message);
            goto out;
        }
        if (!args->json)
            printf("wrote %s\n", path);
    }
    rc = LH_CLI_EXIT_OK;
out:
    json_decref(report);
    free(path);
    lh_config_free(&cfg);
    return rc;
}
