/*
 * embed_hash: how fast the built-in `hash` embedder is (issue 14 item 1; docs/VECTORS.md
 * §Embedders). Wall clock, one run:
 *
 *   embed_hash [N] [DIM]        (defaults 100000 texts, 384 dimensions)
 *
 * N generated resume-like texts of ~1 KB (a deterministic generator: job titles, skills,
 * employers, cities, years; about a third carry non-ASCII names or places, so both the
 * ASCII fast path and utf8proc's path are exercised) are embedded with lh_hash_embed:
 *
 *   embed_1t     one thread: docs/s and MB/s
 *   embed_2t     two threads, each half the texts (the machine's cores), docs/s
 *   normalize    the peer: lh_text_normalize of the same texts (the first step of the
 *                embedder), docs/s, and the ratio embed / normalize time
 *   utf8proc     utf8proc_map NFKC+casefold of every text, without our ASCII fast path
 *
 * It prints figures, never passes or fails on time.
 */
#include "vector/vector_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

static const char *TITLES[] = {
    "Registered Nurse",     "Data Engineer", "Software Developer", "Welder",
    "Chef de Partie",       "Pharmacist",    "Electrician",        "Accountant",
    "Project Manager",      "Teacher",       "Truck Driver",       "Physiotherapist",
    "Sales Representative", "UX Designer"};
static const char *SKILLS[] = {"Python",
                               "SQL",
                               "patient care",
                               "ICU",
                               "TIG welding",
                               "Kubernetes",
                               "Excel",
                               "budgeting",
                               "curriculum design",
                               "forklift",
                               "customer service",
                               "React",
                               "Spark",
                               "HACCP",
                               "wound care",
                               "AutoCAD",
                               "negotiation",
                               "payroll",
                               "Go",
                               "team leadership",
                               "scheduling",
                               "inventory",
                               "first aid"};
static const char *EMPLOYERS[] = {
    "Acme Health",      "Northwind",   "Globex",  "Initech", "Umbrella Logistics",
    "Stark Industries", "Wayne Foods", "Contoso", "Hooli",   "Vandelay Imports"};
static const char *CITIES[] = {"Denver",  "Austin",  "Berlin",     "Lisbon", "Toronto",
                               "Chicago", "Seattle", "Manchester", "Dublin", "Lyon"};
static const char *INTL[] = {"José Müller",  "Zoë Ångström", "Straße 12, München", "São Paulo",
                             "Kraków",       "Dvořák",       "Ğüneş Yılmaz",       "東京都",
                             "Renée Façade", "Bjørn Ødegård"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng_state >> 33) % n);
}
#define PICK(a) (a[rnd(sizeof(a) / sizeof(*a))])

static char *resume(void)
{
    lh_buf b;
    lh_buf_init(&b);
    if (rnd(3) == 0)
        lh_buf_printf(&b, "%s. ", PICK(INTL));
    lh_buf_printf(&b, "%s with %u years of experience in %s. ", PICK(TITLES), 1 + rnd(25),
                  PICK(CITIES));
    while (b.len < 1000) {
        lh_buf_printf(&b, "%u-%u: %s at %s, %s. Used %s, %s and %s daily; ", 1990 + rnd(30),
                      2000 + rnd(25), PICK(TITLES), PICK(EMPLOYERS), PICK(CITIES), PICK(SKILLS),
                      PICK(SKILLS), PICK(SKILLS));
        if (rnd(4) == 0)
            lh_buf_printf(&b, "led a team of %u, improved throughput by %u%%. ", 2 + rnd(20),
                          5 + rnd(60));
    }
    lh_buf_putc(&b, '\0');
    return b.data;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    char **texts;
    size_t from, to;
    int dim;
    float *out;
} slice;

static void *embed_slice(void *p)
{
    slice *s = p;
    for (size_t i = s->from; i < s->to; i++)
        lh_hash_embed(s->texts[i], strlen(s->texts[i]), s->dim, s->out + (i % 64) * s->dim);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    int dim = argc > 2 ? atoi(argv[2]) : 384;
    if (n == 0 || dim < 8 || dim > 4096) {
        fprintf(stderr, "usage: embed_hash [N] [DIM 8..4096]\n");
        return 2;
    }
    char **texts = lh_xmalloc(n * sizeof(*texts));
    size_t bytes = 0, non_ascii = 0;
    for (size_t i = 0; i < n; i++) {
        texts[i] = resume();
        size_t l = strlen(texts[i]);
        bytes += l;
        for (size_t k = 0; k < l; k++)
            if ((unsigned char)texts[i][k] >= 0x80) {
                non_ascii++;
                break;
            }
    }
    printf("embed_hash: %zu texts, %.0f bytes on average, %.0f%% with non-ASCII, dim %d\n", n,
           (double)bytes / n, 100.0 * non_ascii / n, dim);

    /* one thread; the 64-row output ring keeps the figures about embedding, not memory */
    float *out = lh_xmalloc(2 * 64 * (size_t)dim * sizeof(float));
    slice all = {texts, 0, n, dim, out};
    double t0 = now_s();
    embed_slice(&all);
    double t_embed = now_s() - t0;
    printf("  embed_1t    %9.0f docs/s  %7.1f MB/s  (%.2f s)\n", n / t_embed, bytes / t_embed / 1e6,
           t_embed);

    slice halves[2] = {{texts, 0, n / 2, dim, out}, {texts, n / 2, n, dim, out + 64 * dim}};
    pthread_t th;
    t0 = now_s();
    pthread_create(&th, NULL, embed_slice, &halves[1]);
    embed_slice(&halves[0]);
    pthread_join(th, NULL);
    double t2 = now_s() - t0;
    printf("  embed_2t    %9.0f docs/s  (%.2f s, %.2fx one thread)\n", n / t2, t2, t_embed / t2);

    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char *s;
        size_t l;
        if (lh_text_normalize(texts[i], strlen(texts[i]), &s, &l, NULL) == 0)
            free(s);
    }
    double t_norm = now_s() - t0;
    printf("  normalize   %9.0f docs/s  (%.2f s)  -> embed / normalize = %.1f\n", n / t_norm,
           t_norm, t_embed / t_norm);

    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        utf8proc_uint8_t *s = NULL;
        if (utf8proc_map((const utf8proc_uint8_t *)texts[i], (utf8proc_ssize_t)strlen(texts[i]), &s,
                         UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                             UTF8PROC_CASEFOLD) >= 0)
            free(s);
    }
    double t_u = now_s() - t0;
    printf("  utf8proc    %9.0f docs/s  (%.2f s, every text through utf8proc_map)\n", n / t_u, t_u);

    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(out);
    return 0;
}
