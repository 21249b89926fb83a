/*
 * gen_people: writes a synthetic people CSV for the ingest benchmark.
 *
 *   gen_people ROWS [OUT.csv] [--seed N]      (stdout when OUT is omitted or "-")
 *
 * 15 columns with a header row, ≈250 bytes a row: candidate_id, first_name, last_name,
 * email, phone, city, country, birth_date, hired_at, salary, score, is_active, department,
 * notes, updated_at. The same ROWS and seed always give the same bytes (splitmix64, no
 * locale, no clock), so runs on different machines compare. Names, cities and notes
 * include non-ASCII letters, and notes hold commas and double quotes (RFC 4180 quoted),
 * so the CSV reader does real work. A few phones and notes are empty (NULL after ingest).
 *
 * Speed matters (a million rows should take well under a second): rows are formatted by
 * hand into a large buffer written with fwrite, no printf per field.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *shown; /* as written in the name column */
    const char *slug;  /* ASCII form used in the email address */
} name_entry;

static const name_entry first_names[] = {
    {"James", "james"}, {"Mary", "mary"},     {"José", "jose"},
    {"Zoë", "zoe"},     {"Aiko", "aiko"},     {"Oluwaseun", "oluwaseun"},
    {"Priya", "priya"}, {"Lars", "lars"},     {"Fatima", "fatima"},
    {"Wei", "wei"},     {"Élodie", "elodie"}, {"Mohammed", "mohammed"},
    {"Sofia", "sofia"}, {"Liam", "liam"},     {"Ana", "ana"},
    {"Noah", "noah"},   {"Ingrid", "ingrid"}, {"Kwame", "kwame"},
    {"Chloé", "chloe"}, {"Dmitri", "dmitri"}, {"Hannah", "hannah"},
    {"Mateo", "mateo"}, {"Yuki", "yuki"},     {"Amara", "amara"},
};

static const name_entry last_names[] = {
    {"Smith", "smith"},     {"Müller", "muller"},       {"García", "garcia"},
    {"Nguyen", "nguyen"},   {"O'Brien", "obrien"},      {"Kowalski", "kowalski"},
    {"Okafor", "okafor"},   {"Tanaka", "tanaka"},       {"Johansson", "johansson"},
    {"Rossi", "rossi"},     {"Dubois", "dubois"},       {"Patel", "patel"},
    {"Kim", "kim"},         {"Silva", "silva"},         {"Cohen", "cohen"},
    {"Ivanova", "ivanova"}, {"Hernández", "hernandez"}, {"Schmidt", "schmidt"},
    {"Mensah", "mensah"},   {"Andersen", "andersen"},
};

static const char *const domains[] = {"example.com", "example.org", "mail.example.net"};

static const struct {
    const char *city, *country;
} places[] = {
    {"New York", "United States"}, {"London", "United Kingdom"}, {"Paris", "France"},
    {"Berlin", "Germany"},         {"São Paulo", "Brazil"},      {"Tokyo", "Japan"},
    {"Lagos", "Nigeria"},          {"Mumbai", "India"},          {"Toronto", "Canada"},
    {"Sydney", "Australia"},       {"Zürich", "Switzerland"},    {"Madrid", "Spain"},
    {"Kraków", "Poland"},          {"Seoul", "South Korea"},     {"Mexico City", "Mexico"},
    {"Stockholm", "Sweden"},
};

static const char *const departments[] = {
    "Engineering", "Sales", "Marketing", "Finance", "Human Resources",
    "Operations",  "Legal", "Support",   "Product", "Research & Development",
};

/* Free-text fragments; two or three are joined per row, so commas and quotes abound. */
static const char *const note_parts[] = {
    "strong SQL skills",
    "prefers \"remote\" work",
    "relocation possible, needs a visa",
    "referred by a former colleague",
    "interviewed twice, positive feedback",
    "asked about \"equity\" and the bonus plan",
    "available from next quarter",
    "speaks English, French and Spanish",
    "good culture fit according to the panel",
    "follow up in 3 months",
    "salary expectations above the band",
    "certified: AWS, GCP",
    "said \"let's talk again in spring\"",
    "portfolio reviewed, solid work",
    "notice period of 60 days",
};

static const char *const header =
    "candidate_id,first_name,last_name,email,phone,city,country,birth_date,hired_at,salary,"
    "score,is_active,department,notes,updated_at\n";

/* ---------------------------------------------------------------- PRNG */

typedef struct {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (Lemire's multiply; the bias is far below what a benchmark sees). */
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

#define PICK(r, table) (table[rng_below((r), sizeof(table) / sizeof(table[0]))])

/* ---------------------------------------------------------------- output buffer */

#define OUT_CAP (1u << 20)
#define ROW_MAX 2048 /* a row is far shorter; flush before one could overflow */

typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    int failed_errno;
} out_buf;

static void out_flush(out_buf *o)
{
    if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len && !o->failed_errno)
        o->failed_errno = errno ? errno : EIO;
    o->len = 0;
}

static void put_str(out_buf *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_char(out_buf *o, char c)
{
    o->buf[o->len++] = c;
}

/* Decimal digits of v, left-padded with zeros to at least `width`. */
static void put_uint(out_buf *o, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        put_char(o, tmp[--n]);
}

/* A CSV field, quoted when it holds a comma, a quote or a newline (RFC 4180). */
static void put_csv(out_buf *o, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        put_str(o, s);
        return;
    }
    put_char(o, '"');
    for (; *s; s++) {
        if (*s == '"')
            put_char(o, '"');
        put_char(o, *s);
    }
    put_char(o, '"');
}

/* ---------------------------------------------------------------- dates */

/* Days since 1970-01-01 → civil date (Howard Hinnant's algorithm, proleptic Gregorian). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static void put_date(out_buf *o, int64_t days)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    put_uint(o, (uint64_t)y, 4);
    put_char(o, '-');
    put_uint(o, (uint64_t)m, 2);
    put_char(o, '-');
    put_uint(o, (uint64_t)d, 2);
}

static void put_timestamp(out_buf *o, int64_t epoch_s)
{
    int64_t days = epoch_s / 86400, secs = epoch_s % 86400;
    put_date(o, days);
    put_char(o, ' ');
    put_uint(o, (uint64_t)(secs / 3600), 2);
    put_char(o, ':');
    put_uint(o, (uint64_t)(secs / 60 % 60), 2);
    put_char(o, ':');
    put_uint(o, (uint64_t)(secs % 60), 2);
}

/* ---------------------------------------------------------------- rows */

#define BIRTH_FIRST_DAY (-7305)     /* 1950-01-01 */
#define BIRTH_DAYS 20089            /* … 2004-12-31 */
#define HIRED_FIRST_S 946684800LL   /* 2000-01-01 00:00:00 */
#define HIRED_SPAN_S 804556800LL    /* … 2025-06-30 */
#define UPDATE_SPAN_S 31536000LL    /* updated up to a year after hiring … */
#define UPDATED_LAST_S 1767225599LL /* … but not after 2025-12-31 23:59:59 */

static void put_row(out_buf *o, rng *r, uint64_t id)
{
    const name_entry *first = &PICK(r, first_names);
    const name_entry *last = &PICK(r, last_names);
    uint32_t place = rng_below(r, sizeof(places) / sizeof(places[0]));

    put_uint(o, id, 1);
    put_char(o, ',');
    put_csv(o, first->shown);
    put_char(o, ',');
    put_csv(o, last->shown);
    put_char(o, ',');
    put_str(o, first->slug);
    put_char(o, '.');
    put_str(o, last->slug);
    put_uint(o, id, 1);
    put_char(o, '@');
    put_str(o, PICK(r, domains));
    put_char(o, ',');
    if (rng_below(r, 100) >= 3) { /* 3% without a phone */
        put_str(o, "+1-");
        put_uint(o, 201 + rng_below(r, 780), 3);
        put_str(o, "-555-");
        put_uint(o, rng_below(r, 10000), 4);
    }
    put_char(o, ',');
    put_str(o, places[place].city);
    put_char(o, ',');
    put_str(o, places[place].country);
    put_char(o, ',');
    put_date(o, BIRTH_FIRST_DAY + (int64_t)rng_below(r, BIRTH_DAYS));
    put_char(o, ',');
    int64_t hired = HIRED_FIRST_S + (int64_t)(rng_next(r) % (uint64_t)HIRED_SPAN_S);
    put_timestamp(o, hired);
    put_char(o, ',');
    uint32_t cents = 3000000 + rng_below(r, 22000000); /* 30,000.00 … 250,000.00 */
    put_uint(o, cents / 100, 1);
    put_char(o, '.');
    put_uint(o, cents % 100, 2);
    put_char(o, ',');
    uint32_t score = rng_below(r, 1000001); /* 0.0000 … 100.0000 */
    put_uint(o, score / 10000, 1);
    put_char(o, '.');
    put_uint(o, score % 10000, 4);
    put_char(o, ',');
    put_str(o, rng_below(r, 10) < 8 ? "true" : "false");
    put_char(o, ',');
    put_csv(o, PICK(r, departments));
    put_char(o, ',');
    if (rng_below(r, 10) > 0) { /* 10% without notes */
        char notes[512];
        size_t n = 0;
        const uint32_t nparts = sizeof(note_parts) / sizeof(note_parts[0]);
        uint32_t parts = 2 + rng_below(r, 2);
        /* Distinct fragments: a start and a stride of 1..4 (two steps never come back round). */
        uint32_t at = rng_below(r, nparts), stride = 1 + rng_below(r, 4);
        for (uint32_t i = 0; i < parts; i++, at = (at + stride) % nparts)
            n += (size_t)snprintf(notes + n, sizeof(notes) - n, "%s%s", i ? "; " : "",
                                  note_parts[at]);
        put_csv(o, notes);
    }
    put_char(o, ',');
    int64_t updated = hired + (int64_t)(rng_next(r) % (uint64_t)UPDATE_SPAN_S);
    put_timestamp(o, updated < UPDATED_LAST_S ? updated : UPDATED_LAST_S);
    put_char(o, '\n');
}

static int usage(void)
{
    fprintf(stderr, "usage: gen_people ROWS [OUT.csv] [--seed N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *out_path = NULL;
    const char *rows_s = NULL;
    uint64_t seed = 20260101;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!rows_s)
            rows_s = argv[i];
        else if (!out_path)
            out_path = argv[i];
        else
            return usage();
    }
    if (!rows_s)
        return usage();
    char *end;
    errno = 0;
    unsigned long long rows = strtoull(rows_s, &end, 10);
    if (errno || *end || end == rows_s)
        return usage();

    out_buf o = {.f = stdout, .buf = malloc(OUT_CAP)};
    rng r = {seed};
    if (!o.buf) {
        fprintf(stderr, "gen_people: out of memory\n");
        return 1;
    }
    if (out_path && strcmp(out_path, "-") != 0) {
        o.f = fopen(out_path, "wb");
        if (!o.f) {
            fprintf(stderr, "gen_people: cannot create %s: %s\n", out_path, strerror(errno));
            goto out;
        }
    }
    put_str(&o, header);
    for (unsigned long long id = 1; id <= rows && !o.failed_errno; id++) {
        put_row(&o, &r, id);
        if (o.len > OUT_CAP - ROW_MAX)
            out_flush(&o);
    }
    out_flush(&o);
    if (fflush(o.f) != 0 && !o.failed_errno)
        o.failed_errno = errno;
    if (o.f != stdout && fclose(o.f) != 0 && !o.failed_errno)
        o.failed_errno = errno;
    o.f = NULL;
    if (o.failed_errno) {
        fprintf(stderr, "gen_people: write failed: %s\n", strerror(o.failed_errno));
        goto out;
    }
    rc = 0;
out:
    if (o.f && o.f != stdout)
        fclose(o.f);
    free(o.buf);
    return rc;
}
