/*
 * args.c: the command line grammar of `lakehouse`, kept free of I/O so tests can drive it.
 *
 *   lakehouse [global flags] COMMAND [arguments and flags in any order]
 *
 * Global flags are accepted anywhere so `lakehouse sql "..." --json` and
 * `lakehouse --json sql "..."` mean the same. Each command declares its own flags (a
 * NULL-terminated table); anything else is a usage error, never silently ignored.
 */
#include "cli/cli.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *ext;
    const char *format;
} extension_formats[] = {
    {".csv", "csv"},      {".json", "json"},       {".ndjson", "ndjson"},
    {".jsonl", "ndjson"}, {".parquet", "parquet"},
};

const char *lh_cli_format_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < sizeof(extension_formats) / sizeof(extension_formats[0]); i++)
        if (strcasecmp(dot, extension_formats[i].ext) == 0)
            return extension_formats[i].format;
    return NULL;
}

typedef enum { GLOBAL_SERVER, GLOBAL_KEY, GLOBAL_JSON, GLOBAL_HELP, GLOBAL_VERSION } global_id;

static const struct {
    const char *name;
    bool takes_value;
    global_id id;
} global_flags[] = {
    {"--server", true, GLOBAL_SERVER}, {"--key", true, GLOBAL_KEY},
    {"--json", false, GLOBAL_JSON},    {"--help", false, GLOBAL_HELP},
    {"-h", false, GLOBAL_HELP},        {"--version", false, GLOBAL_VERSION},
};

static void set_global(lh_cli_args *args, global_id id, const char *value)
{
    switch (id) {
    case GLOBAL_SERVER:
        args->server = value;
        break;
    case GLOBAL_KEY:
        args->key = value;
        break;
    case GLOBAL_JSON:
        args->json = true;
        break;
    case GLOBAL_HELP:
        args->help = true;
        break;
    case GLOBAL_VERSION:
        args->version = true;
        break;
    }
}

/* Splits "--name=value" into a name of `name_len` bytes and an inline value. */
static size_t flag_name_len(const char *word, const char **inline_value)
{
    const char *eq = strchr(word, '=');
    *inline_value = eq ? eq + 1 : NULL;
    return eq ? (size_t)(eq - word) : strlen(word);
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncmp(name, want, len) == 0;
}

/* Takes the value of flag argv[*i]: inline after '=', else the next word. */
static int take_value(int argc, char **argv, int *i, const char *inline_value, const char **value,
                      lh_error *err)
{
    if (inline_value) {
        *value = inline_value;
        return 0;
    }
    if (*i + 1 >= argc)
        return lh_error_set(err, LH_EINVAL, "%s needs a value", argv[*i]);
    *value = argv[++*i];
    return 0;
}

int lh_cli_parse(int argc, char **argv, const lh_cli_flag_spec *(*lookup)(const char *command),
                 lh_cli_args *args, lh_error *err)
{
    const lh_cli_flag_spec *specs = NULL;
    bool flags_done = false;
    memset(args, 0, sizeof(*args));

    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        bool is_flag = !flags_done && word[0] == '-' && word[1] != '\0';
        if (is_flag && strcmp(word, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (!is_flag) {
            if (!args->command) {
                args->command = word;
                specs = lookup(word);
                if (!specs)
                    return 0; /* unknown command: the caller reports it */
                continue;
            }
            if (args->npos == LH_CLI_MAX_POS)
                return lh_error_set(err, LH_EINVAL, "too many arguments ('%s')", word);
            args->pos[args->npos++] = word;
            continue;
        }

        const char *inline_value;
        size_t len = flag_name_len(word, &inline_value);
        bool matched = false;
        for (size_t g = 0; g < sizeof(global_flags) / sizeof(global_flags[0]); g++) {
            if (!name_is(word, len, global_flags[g].name))
                continue;
            const char *value = NULL;
            if (global_flags[g].takes_value) {
                if (take_value(argc, argv, &i, inline_value, &value, err))
                    return LH_EINVAL;
            } else if (inline_value) {
                return lh_error_set(err, LH_EINVAL, "%s takes no value", global_flags[g].name);
            }
            set_global(args, global_flags[g].id, value);
            matched = true;
            break;
        }
        for (const lh_cli_flag_spec *s = specs; !matched && s && s->name; s++) {
            if (!name_is(word, len, s->name))
                continue;
            const char *value = NULL;
            if (s->takes_value) {
                if (take_value(argc, argv, &i, inline_value, &value, err))
                    return LH_EINVAL;
            } else if (inline_value) {
                return lh_error_set(err, LH_EINVAL, "%s takes no value", s->name);
            }
            if (args->nflags == LH_CLI_MAX_FLAGS)
                return lh_error_set(err, LH_EINVAL, "too many flags");
            args->flags[args->nflags].name = s->name;
            args->flags[args->nflags].value = value;
            args->nflags++;
            matched = true;
        }
        if (!matched)
            return lh_error_set(err, LH_EINVAL, "unknown option '%.*s'%s%s", (int)len, word,
                                args->command ? " for " : "", args->command ? args->command : "");
    }
    return 0;
}

const char *lh_cli_flag(const lh_cli_args *args, const char *name)
{
    /* The last occurrence wins, as with most Unix tools. */
    for (int i = args->nflags - 1; i >= 0; i--)
        if (strcmp(args->flags[i].name, name) == 0)
            return args->flags[i].value;
    return NULL;
}

bool lh_cli_has_flag(const lh_cli_args *args, const char *name)
{
    for (int i = 0; i < args->nflags; i++)
        if (strcmp(args->flags[i].name, name) == 0)
            return true;
    return false;
}
