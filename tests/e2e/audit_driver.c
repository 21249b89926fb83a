/*
 * audit_driver.c: a small process that appends audit rows as fast as it can, for the
 * kill -9 test of tests/e2e/test_audit.py (issue 11 item 7) until access auditing gives
 * the server an endpoint that appends. It opens the audit chains of a data folder like the
 * server does (journal replay first), prints READY, then THREADS threads append rows to
 * SUBJECTS subjects and print "ACK <candidate_id> <row_hmac>" for each acknowledged
 * (durable) row, one write(2) per line. The test kills it at a random moment and checks
 * that every acknowledged row survived and every chain verifies.
 *
 * usage: lh_audit_driver DATA KEYFILE THREADS SUBJECTS
 */
#include "compliance/compliance.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lh_audit *audit;
static int subjects;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void *run(void *arg)
{
    long t = (long)arg;
    static const char *const fields[] = {"candidate_id", "email"};
    for (long i = 0;; i++) {
        char id[32], hmac[LH_AUDIT_HMAC_HEX], line[160];
        snprintf(id, sizeof(id), "CAND-%ld", (t * 7 + i) % subjects);
        lh_audit_entry e = {.candidate_id = id,
                            .accessor_kind = "agent",
                            .daemon = "crash-driver",
                            .purpose = "kill -9 test",
                            .trace_id = "t",
                            .fields = fields,
                            .n_fields = 2,
                            .result = "success"};
        lh_error err;
        if (lh_audit_append(audit, &e, hmac, &err) != 0) {
            fprintf(stderr, "append failed: %s\n", err.message);
            exit(1);
        }
        int n = snprintf(line, sizeof(line), "ACK %s %s\n", id, hmac);
        pthread_mutex_lock(&out_mu);
        if (write(1, line, (size_t)n) != n)
            exit(1);
        pthread_mutex_unlock(&out_mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: lh_audit_driver DATA KEYFILE THREADS SUBJECTS\n");
        return 2;
    }
    lh_error err;
    audit = lh_audit_open(argv[1], argv[2], &err);
    if (!audit) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    int threads = atoi(argv[3]);
    subjects = atoi(argv[4]);
    if (threads < 1 || threads > 64 || subjects < 1)
        return 2;
    if (write(1, "READY\n", 6) != 6)
        return 1;
    pthread_t t[64];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
