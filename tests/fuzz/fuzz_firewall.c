/*
 * fuzz_firewall: lh_sql_firewall_tree on arbitrary bytes taken as a serialized parse tree
 * (the JSON json_serialize_sql prints). No DuckDB: fast, and it reaches shapes the parser
 * never prints (missing names, wrong types, odd nesting), which the walk must refuse or
 * accept without crashing, leaking or reading out of bounds.
 *
 * Oracles besides the sanitizers:
 *   - the result is 0, LH_EFORBIDDEN (kind sql_forbidden), LH_EINVAL (kind sql_error) or
 *     LH_EINTERNAL (only when the bytes are not a JSON object);
 *   - grants are monotone: a tree the agent policy (people) allows, the analyst policy
 *     (people, secret) allows, and what the analyst may run, the admin (raw relations too)
 *     may run.
 */
#include "fuzz_policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lh_fuzz_check_tree(text, false);
    free(text);
    return 0;
}
