/*
 * pii_content.c: PII detection by content, combined with the name signal of pii.c.
 *
 * The ingest hands us, per column, its name, its DuckDB type and a bounded sample of its
 * values as text; we never run SQL and never see more than the sample. Pure functions: the
 * same input gives the same verdict (only "plausible birth year" reads the clock).
 *
 * Each value is tested by the detectors of one table. A detector is a PCRE2 pattern that
 * gates the shape, then, where the shape alone proves little, a validity check in C (Luhn
 * and issuer ranges for cards, barcode check digits to rule out EAN/UPC, mod-97 and the
 * country length for IBANs, the SSA rules for SSNs, NANP area/exchange rules, inet_pton for
 * IPv6, a real calendar date in a birth range, a dictionary of given names and surnames for
 * person names). A column's match rate for a detector is its hits over the NON-EMPTY sampled
 * values (blank, "null", "n/a", "-" do not count), so a sparse column whose few filled
 * cells are emails is an email column. A detector decides when its rate reaches its
 * threshold (halved when the column's name points at the same kind); the highest rate wins.
 *
 * The name signal works in both directions:
 *   - content alone is enough: an opaque name (`c7`) whose values are emails is PII;
 *   - a name is contradicted by content that cannot be that kind: `email_opt_in` holding
 *     booleans, `phone_model` holding device names are not PII (only for kinds whose values
 *     have a recognisable shape, and only with enough values to tell);
 *   - a name whose content is plausible but did not reach a detector's threshold stays PII
 *     by name (detector "name");
 *   - some evidence counts only with the name: bare 9- or 10-digit numbers are SSNs or
 *     phones only in a column the name calls so, dates of birth only in a column the name
 *     calls so, and 4-part dotted numbers are versions, not IPv4 addresses, in a column the
 *     name or the other values call a version.
 *
 * Threads: the patterns are compiled once (pthread_once) with JIT and then only read; each
 * classification uses its own match data, so any thread may classify at any time.
 */
#include "catalog/catalog_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Values are looked at up to this many bytes (the ingest's sample cuts them at 1 KiB). */
#define VALUE_MAX 4096
/* Fewer non-empty values than this cannot contradict a column's name. */
#define CONTRADICT_MIN_SAMPLE 3
/* A name is contradicted when fewer than this share of values have its kind's shape. */
#define CONTRADICT_RATE 0.2
/* Birth years: people between these ages at classification time. */
#define BIRTH_AGE_MIN 14
#define BIRTH_AGE_MAX 120

/* ---------------------------------------------------------------- patterns */

typedef enum {
    P_EMAIL,
    P_EMAIL_IN,
    P_PHONE_NANP,
    P_PHONE_INTL,
    P_PHONE_IN,
    P_SSN,
    P_DIGITS,
    P_IBAN,
    P_IPV4,
    P_IPV6,
    P_VERSION,
    P_NAME,
    P_ADDRESS,
    P_DATE,
    N_PATTERNS
} pattern_id;

#define NAME_WORD "\\p{Lu}(?:['\\x{2019}]\\p{Lu})?\\p{Ll}+(?:-\\p{Lu}\\p{Ll}+|\\p{Lu}\\p{Ll}+)*"

static const char *const pattern_src[N_PATTERNS] = {
    [P_EMAIL] = "^[\\w.%+'-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}$",
    [P_EMAIL_IN] = "[\\w.%+'-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)+[A-Za-z]{2,24}\\b",
    /* NANP with separators: (303) 555-0142, 303-555-0142, 303.555.0142, +1 303 555 0142. */
    [P_PHONE_NANP] = "^(?:\\+?1[\\s.-]?)?(?:\\(\\d{3}\\)\\s?|\\d{3}[\\s.-])\\d{3}[\\s.-]\\d{4}"
                     "(?:\\s*(?:x|ext\\.?)\\s*\\d{1,6})?$",
    /* E.164, with or without spaces: +44 20 7946 0958, +4915123456789. */
    /* E.164, with or without spaces: +44 20 7946 0958, +4915123456789 (8-15 digits, counted
     * in C; one character class keeps the match linear). */
    [P_PHONE_INTL] = "^\\+[1-9][0-9 ().-]{6,22}$",
    [P_PHONE_IN] = "(?<![\\w+])(?:\\+\\d{1,3}[\\s.-]?)?(?:\\(\\d{3}\\)\\s?|\\d{3}[\\s.-])\\d{3}"
                   "[\\s.-]\\d{4}\\b",
    [P_SSN] = "^\\d{3}([- ])\\d{2}\\1\\d{4}$",
    [P_DIGITS] = "^\\d(?:[\\s-]?\\d){7,18}$",
    [P_IBAN] = "^[A-Z]{2}\\d{2}(?:\\s?[A-Z0-9]){11,30}$",
    [P_IPV4] = "^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|"
               "[1-9]?\\d)$",
    [P_IPV6] = "^(?=[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:)[0-9A-Fa-f:.]{2,45}(?:%[\\w.-]{1,32})?$",
    [P_VERSION] = "^[vV]?\\d+(?:\\.\\d+){1,3}(?:[-+][\\w.-]+)?$",
    /* One to four capitalised words (initials and name particles allowed), or "Last, First".
     * A word is Maria, O'Brien, McDonald, Smith-Jones: every repetition starts with a capital
     * or a hyphen, so a long lowercase run has one parse (no catastrophic backtracking). */
    [P_NAME] = "^(?:(?:\\p{Lu}\\.|" NAME_WORD "|van|von|de|del|da|di|le|la|du|der|den|bin|al|y)"
               "\\s){0,3}" NAME_WORD "$|^" NAME_WORD ",\\s" NAME_WORD "$",
    /* Street addresses: "42 Main St", "12 rue de la Paix", "Hauptstraße 5", "Calle Mayor 3",
     * "PO Box 12". A prefix match: city, state and ZIP may follow. */
    [P_ADDRESS] =
        "(?i)^(?:\\d{1,6}[a-z]?(?:-\\d{1,4})?,?\\s+(?:[\\p{L}0-9.'\\x{2019}-]+\\s+){0,5}"
        "(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|"
        "pl|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|crescent|close|trail|"
        "rue|chemin|quai|impasse|all\\x{e9}e)\\b"
        "|[\\p{L}.'\\x{2019} -]{1,40}(?:stra\\x{df}e|strasse|str\\.|weg|gasse|platz|allee|laan|"
        "straat|gata|vej)\\s*\\d{1,5}[a-z]?\\b"
        "|(?:calle|avenida|av\\.|via|viale|piazza|rua|pra\\x{e7}a|plaza|paseo)\\s+"
        "[\\p{L} .'\\x{2019}-]{2,40},?\\s*\\d{1,5}\\b"
        "|(?:p\\.?\\s?o\\.?\\s*box|postfach)\\s*\\d{1,6}\\b)",
    /* ISO 2001-04-23 (a midnight time may follow, as DuckDB prints TIMESTAMPs), US 4/23/2001,
     * European 23.04.2001. Which is which is decided in C. */
    [P_DATE] = "^(?:\\d{4}-\\d{2}-\\d{2}(?:[T ]00:00(?::00(?:\\.0+)?)?)?|\\d{1,2}/\\d{1,2}/\\d{4}|"
               "\\d{1,2}\\.\\d{1,2}\\.\\d{4})$",
};

/* Backtracking budget per match: our patterns are linear or near it on sane input; the limit
 * bounds the cost of a hostile 1 KiB value (a failed match counts as no match). */
#define MATCH_LIMIT 100000

static pcre2_code *patterns[N_PATTERNS];
static pcre2_match_context *match_ctx; /* only read after patterns_compile */
static pthread_once_t patterns_once = PTHREAD_ONCE_INIT;
static char patterns_error[256];

static void patterns_compile(void)
{
    match_ctx = pcre2_match_context_create(NULL);
    if (!match_ctx) {
        snprintf(patterns_error, sizeof(patterns_error), "out of memory for PII patterns");
        return;
    }
    pcre2_set_match_limit(match_ctx, MATCH_LIMIT);
    for (int i = 0; i < N_PATTERNS; i++) {
        int code;
        PCRE2_SIZE off;
        patterns[i] =
            pcre2_compile((PCRE2_SPTR)pattern_src[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
        if (!patterns[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof(msg));
            snprintf(patterns_error, sizeof(patterns_error), "PII pattern %d at offset %zu: %s", i,
                     (size_t)off, (const char *)msg);
            return;
        }
        /* JIT is an optimisation: where the platform lacks it, the interpreter matches. */
        (void)pcre2_jit_compile(patterns[i], PCRE2_JIT_COMPLETE);
    }
}

static int patterns_ready(lh_error *err)
{
    pthread_once(&patterns_once, patterns_compile);
    if (patterns_error[0])
        return lh_error_set(err, LH_EINTERNAL, "%s", patterns_error);
    return 0;
}

static bool match(pattern_id p, const char *s, size_t len, pcre2_match_data *md)
{
    return pcre2_match(patterns[p], (PCRE2_SPTR)s, len, 0, 0, md, match_ctx) >= 0;
}

/* ---------------------------------------------------------------- validators */

/* Copies the digits of s into out (NUL-terminated) when s holds only digits, spaces and
 * dashes; returns the digit count, or -1. */
static int digits_of(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *s;
        } else if (*s != ' ' && *s != '-') {
            return -1;
        }
    }
    out[n] = '\0';
    return (int)n;
}

static bool all_digits(const char *d)
{
    if (!*d)
        return false;
    for (; *d; d++)
        if (*d < '0' || *d > '9')
            return false;
    return true;
}

bool lh_pii_luhn_ok(const char *digits)
{
    if (!digits || !all_digits(digits) || strlen(digits) < 2)
        return false;
    int sum = 0;
    bool twice = false;
    for (size_t i = strlen(digits); i-- > 0; twice = !twice) {
        int d = digits[i] - '0';
        if (twice && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

bool lh_pii_gtin_ok(const char *digits)
{
    size_t n = digits ? strlen(digits) : 0;
    if ((n != 8 && n != 12 && n != 13 && n != 14) || !all_digits(digits))
        return false;
    int sum = 0;
    /* From the digit left of the check digit leftwards, weights 3, 1, 3, ... */
    for (size_t k = 0; k + 1 < n; k++)
        sum += (digits[n - 2 - k] - '0') * (k % 2 == 0 ? 3 : 1);
    return (10 - sum % 10) % 10 == digits[n - 1] - '0';
}

/* Issuer identification ranges: numbers whose first `plen` digits lie in [lo, hi] and
 * whose length is in [min_len, max_len]. */
static const struct {
    const char *issuer;
    int plen, lo, hi, min_len, max_len;
} issuers[] = {
    {"visa", 1, 4, 4, 13, 19},
    {"mastercard", 2, 51, 55, 16, 16},
    {"mastercard", 4, 2221, 2720, 16, 16},
    {"amex", 2, 34, 34, 15, 15},
    {"amex", 2, 37, 37, 15, 15},
    {"discover", 4, 6011, 6011, 16, 19},
    {"discover", 3, 644, 649, 16, 19},
    {"discover", 2, 65, 65, 16, 19},
    {"jcb", 4, 3528, 3589, 16, 19},
    {"diners", 3, 300, 305, 14, 19},
    {"diners", 2, 36, 36, 14, 19},
    {"diners", 2, 38, 39, 16, 19},
    {"unionpay", 2, 62, 62, 16, 19},
    {"maestro", 2, 50, 50, 13, 19},
    {"maestro", 2, 56, 58, 13, 19},
};

bool lh_pii_card_ok(const char *s)
{
    char d[32];
    int n = s ? digits_of(s, d, sizeof(d)) : -1;
    if (n < 13 || n > 19 || !lh_pii_luhn_ok(d))
        return false;
    /* EAN-13 and GTIN-14 barcodes are 13/14 digits too; a valid barcode check digit wins
     * (a product column is far more common than 13- or 14-digit cards). */
    if ((n == 13 || n == 14) && lh_pii_gtin_ok(d))
        return false;
    for (size_t i = 0; i < sizeof(issuers) / sizeof(issuers[0]); i++) {
        int prefix = 0;
        for (int k = 0; k < issuers[i].plen; k++)
            prefix = prefix * 10 + (d[k] - '0');
        if (prefix >= issuers[i].lo && prefix <= issuers[i].hi && n >= issuers[i].min_len &&
            n <= issuers[i].max_len)
            return true;
    }
    return false;
}

bool lh_pii_ssn_ok(const char *s)
{
    char d[16];
    if (!s || digits_of(s, d, sizeof(d)) != 9)
        return false;
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int group = (d[3] - '0') * 10 + (d[4] - '0');
    int serial = atoi(d + 5);
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

/* IBAN lengths by country (ISO 13616 registry). */
static const struct {
    char cc[3];
    int len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18},
    {"DO", 28}, {"EE", 20}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22},
    {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23},
    {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LI", 21}, {"LT", 20},
    {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31},
    {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29},
    {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VG", 24}, {"XK", 20},
};

bool lh_pii_iban_ok(const char *s)
{
    char c[40];
    size_t n = 0;
    for (; s && *s; s++) {
        if (*s == ' ')
            continue;
        if (n + 1 >= sizeof(c) || !isalnum((unsigned char)*s))
            return false;
        c[n++] = (char)toupper((unsigned char)*s);
    }
    c[n] = '\0';
    if (n < 15 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1]) ||
        !isdigit((unsigned char)c[2]) || !isdigit((unsigned char)c[3]))
        return false;
    int want = 0;
    for (size_t i = 0; i < sizeof(iban_lengths) / sizeof(iban_lengths[0]); i++)
        if (memcmp(iban_lengths[i].cc, c, 2) == 0)
            want = iban_lengths[i].len;
    if ((size_t)want != n)
        return false;
    /* Move the first four characters to the end, letters as 10..35, the number mod 97. */
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (isdigit((unsigned char)ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

bool lh_pii_ipv6_ok(const char *s)
{
    char buf[64];
    if (!s || !strchr(s, ':'))
        return false;
    size_t n = strcspn(s, "%"); /* a zone ("fe80::1%eth0") names an interface, not the host */
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct in6_addr a;
    return inet_pton(AF_INET6, buf, &a) == 1;
}

/* NANP: area code and exchange both start 2-9. digits is 10 digits, or 11 starting 1. */
static bool nanp_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 11 && d[0] == '1')
        d++, n--;
    return n == 10 && d[0] >= '2' && d[3] >= '2';
}

static bool phone_ok(const char *s, bool nanp)
{
    char d[32];
    size_t n = 0;
    for (; *s && !(*s == 'x' || *s == 'e'); s++) /* the extension is not part of the number */
        if (*s >= '0' && *s <= '9') {
            if (n + 1 >= sizeof(d))
                return false;
            d[n++] = *s;
        }
    d[n] = '\0';
    return nanp ? nanp_ok(d) : n >= 8 && n <= 15;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static bool ymd_ok(int y, int m, int d)
{
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

/* A real calendar date in one of P_DATE's spellings; *year gets its year. */
static bool date_ok(const char *s, int *year)
{
    int a, b, c;
    if (sscanf(s, "%4d-%2d-%2d", &a, &b, &c) == 3 && s[4] == '-') {
        *year = a;
        return ymd_ok(a, b, c);
    }
    char sep = strchr(s, '/') ? '/' : '.';
    if (sscanf(s, sep == '/' ? "%d/%d/%d" : "%d.%d.%d", &a, &b, &c) != 3)
        return false;
    *year = c;
    /* US month/day with slashes, day.month with dots; a slash date that is only valid the
     * other way round (13/04/1990) is read day first. */
    if (sep == '/')
        return ymd_ok(c, a, b) || ymd_ok(c, b, a);
    return ymd_ok(c, b, a);
}

static int current_year(void)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    return tm.tm_year + 1900;
}

/* ---------------------------------------------------------------- person names */

/* Common given names and surnames across the languages our users hire in. A value counts as
 * a person's name when its shape is a name's and it holds one of these; with the name
 * signal the shape alone suffices. */
static const char given_names[] =
    " "
    "aaron adam adrian ahmed aisha alan alejandro alex alexander alice ali alicia amanda "
    "amelia amy ana andrea andrew angela anna anne anthony antonio arjun ashley barbara "
    "ben benjamin beth brian camila carla carlos carmen caroline catherine charles "
    "charlotte chen chloe chris christina christopher claire daniel david deborah diana "
    "diego dmitri donna dorothy edward elena elizabeth emily emma eric ethan eva fatima "
    "fernando francesca francisco frank gabriel gary george grace hannah hans harry helen "
    "henry hiroshi ian isabella ivan jack jacob james jane jason javier jennifer jessica "
    "jin joan john jorge jose josé joseph joshua juan julia karen kate kenji kevin kim "
    "laura lauren linda lisa liam lucas lucia luis luka marco margaret maria maría mark "
    "martin mary matthew mei michael michelle miguel mohammed muhammad nancy natalia "
    "nicole noah olga oliver olivia omar pablo patricia paul pedro peter priya rachel "
    "rahul raj rebecca richard robert ronald rosa ryan samuel sandra sara sarah sean "
    "sergei sofia sophia stephen steven susan thomas timothy tom valentina victor wei "
    "william xin yuki zoe ";

static const char surnames[] =
    " "
    "adams ahmed ali allen anderson bailey baker brown campbell carter chen clark collins "
    "cook cooper davies davis diaz edwards evans fernández fernandez fischer garcia "
    "garcía gomez gonzalez green hall harris hernandez hill huang hughes jackson johnson "
    "jones kelly khan kim king kumar lee lewis li lopez lópez martin martinez martínez "
    "meyer miller mitchell moore morgan morris murphy nakamura nelson nguyen o'brien "
    "parker patel perez phillips ramirez roberts robinson rodriguez rossi sanchez schmidt "
    "schneider scott silva singh smith suzuki tanaka taylor thomas thompson turner walker "
    "wang white williams wilson wright wu yamamoto young zhang ";

/* True when the word (its first len bytes) is in list, a string of lowercase words each
 * followed by a space, the first preceded by one. ASCII letters are compared lowercased. */
static bool in_list(const char *word, size_t len, const char *list)
{
    char key[48];
    if (len + 3 > sizeof(key))
        return false;
    key[0] = ' ';
    for (size_t i = 0; i < len; i++)
        key[i + 1] = (char)tolower((unsigned char)word[i]);
    key[len + 1] = ' ';
    key[len + 2] = '\0';
    return strstr(list, key) != NULL;
}

/* True when some word of the value is a known given name or surname. */
static bool has_known_name(const char *s)
{
    while (*s) {
        while (*s == ' ' || *s == ',')
            s++;
        size_t len = strcspn(s, " ,");
        if (len && (in_list(s, len, given_names) || in_list(s, len, surnames)))
            return true;
        s += len;
    }
    return false;
}

/* ---------------------------------------------------------------- per value */

/* One non-empty sampled value and what its tests share. */
typedef struct value {
    const char *s; /* NUL-terminated, len bytes */
    size_t len;
    const char *name_kind; /* the kind the column's name says, or NULL */
    int year_now;
    pcre2_match_data *md;
} value;

static bool is(const value *v, pattern_id p)
{
    return match(p, v->s, v->len, v->md);
}

static bool name_is(const value *v, const char *kind)
{
    return v->name_kind && strcmp(v->name_kind, kind) == 0;
}

/* Digit count of a bare digit run (spaces and dashes allowed), digits into d; else 0. */
static int bare_digits(const value *v, char *d, size_t cap)
{
    return is(v, P_DIGITS) ? digits_of(v->s, d, cap) : 0;
}

static bool t_email(const value *v)
{
    return is(v, P_EMAIL);
}

static bool t_ssn(const value *v)
{
    char d[32];
    if (is(v, P_SSN))
        return lh_pii_ssn_ok(v->s);
    /* Bare 9-digit numbers are SSNs only where the name says so. */
    return name_is(v, "ssn") && bare_digits(v, d, sizeof(d)) == 9 && lh_pii_ssn_ok(d);
}

static bool t_card(const value *v)
{
    return is(v, P_DIGITS) && lh_pii_card_ok(v->s);
}

static bool t_iban(const value *v)
{
    return is(v, P_IBAN) && lh_pii_iban_ok(v->s);
}

static bool t_phone(const value *v)
{
    char d[32];
    if (is(v, P_PHONE_NANP))
        return phone_ok(v->s, true);
    if (is(v, P_PHONE_INTL))
        return phone_ok(v->s, false);
    /* Bare 10/11-digit numbers are phones only where the name says so. */
    int n = name_is(v, "phone") ? bare_digits(v, d, sizeof(d)) : 0;
    return (n == 10 || n == 11) && nanp_ok(d);
}

static bool t_ipv4(const value *v)
{
    return is(v, P_IPV4);
}

static bool t_ipv6(const value *v)
{
    return is(v, P_IPV6) && lh_pii_ipv6_ok(v->s);
}

static bool t_address(const value *v)
{
    return is(v, P_ADDRESS);
}

/* Two words at least: without the name signal, one capitalised word is a city as often as
 * a person. */
static bool t_name(const value *v)
{
    return strchr(v->s, ' ') && is(v, P_NAME) && has_known_name(v->s);
}

static bool t_dob(const value *v)
{
    int year;
    return is(v, P_DATE) && date_ok(v->s, &year) && year >= v->year_now - BIRTH_AGE_MAX &&
           year <= v->year_now - BIRTH_AGE_MIN;
}

/* Several words, one of them an email or a phone number. */
static bool t_free_text(const value *v)
{
    return strchr(v->s, ' ') && (is(v, P_EMAIL_IN) || is(v, P_PHONE_IN));
}

/* Detectors, in priority order for equal rates. */
typedef enum {
    D_EMAIL,
    D_SSN,
    D_CARD,
    D_IBAN,
    D_PHONE,
    D_IPV4,
    D_IPV6,
    D_ADDRESS,
    D_NAME,
    D_DOB,
    D_FREE_TEXT,
    N_DETECTORS
} detector_id;

#define NEEDS_NAME 1  /* counts only when the column's name points at the same kind */
#define LAST_RESORT 2 /* tried only on values no other detector matched (last in the table) */

static const struct {
    const char *detector; /* recorded in pii_evidence.detector */
    const char *kind;
    lh_sensitivity sensitivity;
    double threshold; /* share of non-empty values; halved when the name agrees */
    int flags;
    bool (*test)(const value *v);
} detectors[N_DETECTORS] = {
    [D_EMAIL] = {"email", "email", LH_SENS_PII, 0.2, 0, t_email},
    [D_SSN] = {"us_ssn", "ssn", LH_SENS_PII, 0.2, 0, t_ssn},
    [D_CARD] = {"payment_card", "credit_card", LH_SENS_FINANCIAL, 0.2, 0, t_card},
    [D_IBAN] = {"iban", "bank_account", LH_SENS_FINANCIAL, 0.2, 0, t_iban},
    [D_PHONE] = {"phone", "phone", LH_SENS_PII, 0.3, 0, t_phone},
    [D_IPV4] = {"ipv4", "ip_address", LH_SENS_PII, 0.5, 0, t_ipv4},
    [D_IPV6] = {"ipv6", "ip_address", LH_SENS_PII, 0.5, 0, t_ipv6},
    [D_ADDRESS] = {"postal_address", "address", LH_SENS_PII, 0.4, 0, t_address},
    [D_NAME] = {"person_name", "name", LH_SENS_PII, 0.6, 0, t_name},
    [D_DOB] = {"date_of_birth", "date_of_birth", LH_SENS_PII, 0.6, NEEDS_NAME, t_dob},
    [D_FREE_TEXT] = {"free_text_contact", "free_text_contact", LH_SENS_PII, 0.1, LAST_RESORT,
                     t_free_text},
};

/* What one column's non-empty values showed. */
typedef struct counts {
    size_t nonempty;
    size_t hits[N_DETECTORS];
    size_t name_shape;   /* P_NAME matched (the name signal's confirmation) */
    size_t loose;        /* values with the loose shape of the name's kind */
    size_t boolean_like; /* true/false/yes/no/0/1 ... */
    size_t version_only; /* dotted version numbers that are not IPv4 addresses */
} counts;

/* Kinds whose values have a shape we can recognise loosely, so that content can contradict
 * a name ("email_opt_in" of booleans). Other kinds (salary, medical, gender...) are
 * attributes whose values may be anything, a flag included: the name alone decides. */
typedef enum {
    L_NONE,
    L_EMAIL,
    L_PHONE,
    L_SSN,
    L_CARD,
    L_BANK,
    L_IP,
    L_DATE,
    L_NAME,
    L_ADDR
} loose_kind;

static const struct {
    const char *kind;
    loose_kind loose;
} loose_kinds[] = {
    {"email", L_EMAIL},        {"phone", L_PHONE},       {"ssn", L_SSN},
    {"credit_card", L_CARD},   {"bank_account", L_BANK}, {"ip_address", L_IP},
    {"date_of_birth", L_DATE}, {"name", L_NAME},         {"address", L_ADDR},
};

static loose_kind loose_of(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof(loose_kinds) / sizeof(loose_kinds[0]); i++)
        if (strcmp(loose_kinds[i].kind, kind) == 0)
            return loose_kinds[i].loose;
    return L_NONE;
}

static bool is_empty_value(const char *s)
{
    static const char *const blanks[] = {"", "null", "none", "n/a", "na", "nan", "-", "?", "nil"};
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(blanks) / sizeof(blanks[0]); i++)
        if (strlen(blanks[i]) == n && strncasecmp(blanks[i], s, n) == 0)
            return true;
    return false;
}

static bool is_boolean_like(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "y",  "n",
                                        "t",    "f",     "0",   "1",  "on", "off"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(words[i], s) == 0)
            return true;
    return false;
}

static size_t count_digits(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s >= '0' && *s <= '9';
    return n;
}

static bool has_alpha(const char *s)
{
    for (; *s; s++)
        if (isalpha((unsigned char)*s) || (unsigned char)*s >= 0x80)
            return true;
    return false;
}

static bool loose_match(loose_kind k, const value *v)
{
    const char *s = v->s;
    size_t digits = count_digits(s);
    switch (k) {
    case L_NONE:
        return true;
    case L_EMAIL:
        return strchr(s, '@') != NULL;
    case L_PHONE:
        return digits >= 7 && strspn(s, "0123456789 +-().xXext") == v->len;
    case L_SSN:
        return digits == 9 && strspn(s, "0123456789 -") == v->len;
    case L_CARD: /* a card number, or its 3-4 digit security code (`cvv` is a card kind) */
        return digits >= 3 && digits <= 19 && strspn(s, "0123456789 -") == v->len;
    case L_BANK:
        return digits >= 4;
    case L_IP:
        return strchr(s, ':') != NULL || (digits >= 4 && strchr(s, '.') != NULL);
    case L_DATE:
        return is(v, P_DATE); /* a malformed date is still meant as a date */
    case L_NAME:
        return has_alpha(s) && !strchr(s, '@');
    case L_ADDR:
        return true; /* a ZIP code, a street, a town: only flags contradict an address */
    }
    return false;
}

/* Runs every detector's test on one non-empty value; updates c. */
static void scan_value(const value *v, counts *c)
{
    bool any = false;
    for (int d = 0; d < N_DETECTORS; d++) {
        if ((detectors[d].flags & LAST_RESORT) && any)
            continue;
        if ((detectors[d].flags & NEEDS_NAME) && !name_is(v, detectors[d].kind))
            continue;
        bool hit = detectors[d].test(v);
        c->hits[d] += hit;
        any = any || hit;
    }
    /* What the column-level rules need besides the hits. */
    c->name_shape += is(v, P_NAME);
    c->version_only += !is(v, P_IPV4) && is(v, P_VERSION);
    c->boolean_like += is_boolean_like(v->s);
    c->loose += loose_match(loose_of(v->name_kind), v);
}

/* ---------------------------------------------------------------- per column */

/* Column-name words that make dotted numbers versions, not addresses. */
static const char *const version_words[] = {"version",  "ver", "release", "build", "firmware",
                                            "revision", "rev", "sw",      "os"};

static bool name_says_version(const char *column)
{
    for (size_t i = 0; i < sizeof(version_words) / sizeof(version_words[0]); i++)
        if (lh_pii__name_has_token(column, version_words[i]))
            return true;
    return false;
}

/* DuckDB types whose values can never be one of the identifier kinds' shapes. */
static bool type_contradicts(const char *type, loose_kind k)
{
    if (!type || k == L_NONE)
        return false;
    if (strcasecmp(type, "BOOLEAN") == 0)
        return true;
    bool numeric = strcasecmp(type, "DOUBLE") == 0 || strcasecmp(type, "FLOAT") == 0 ||
                   strncasecmp(type, "DECIMAL", 7) == 0;
    return numeric && k != L_CARD && k != L_BANK;
}

static void set_verdict(lh_pii_verdict *v, const char *kind, lh_sensitivity sens,
                        const char *detector, double rate)
{
    v->is_pii = kind != NULL;
    v->kind = kind;
    v->sensitivity = lh_sensitivity_name(kind ? (int)sens : LH_SENS_NONE);
    v->detector = detector;
    v->match_rate = rate;
}

int lh_pii_classify(const char *column, const char *type, const char *const *values, size_t n,
                    lh_pii_verdict *out, lh_error *err)
{
    const char *name_kind = NULL, *name_sens = NULL;
    memset(out, 0, sizeof(*out));
    out->name_signal = lh_pii_by_name(column, &name_kind, &name_sens) == 1;
    out->match_rate = -1;
    loose_kind loose = loose_of(name_kind);
    int rc = 0;
    pcre2_match_data *md = NULL;
    counts c = {0};
    if (n) {
        if ((rc = patterns_ready(err)) != 0)
            return rc;
        md = pcre2_match_data_create(16, NULL);
        if (!md)
            return lh_error_set(err, LH_EINTERNAL, "out of memory for PII match data");
    }
    char *cut = NULL; /* a value longer than VALUE_MAX is looked at in its first bytes */
    value v = {.name_kind = name_kind, .year_now = current_year(), .md = md};
    for (size_t i = 0; i < n; i++) {
        if (!values[i] || is_empty_value(values[i]))
            continue;
        v.s = values[i];
        v.len = strnlen(v.s, VALUE_MAX + 1);
        if (v.len > VALUE_MAX) {
            if (!cut)
                cut = lh_xmalloc(VALUE_MAX + 1);
            memcpy(cut, v.s, VALUE_MAX);
            cut[VALUE_MAX] = '\0';
            v.s = cut;
            v.len = VALUE_MAX;
        }
        c.nonempty++;
        scan_value(&v, &c);
    }
    free(cut);
    pcre2_match_data_free(md);
    out->sampled = c.nonempty;

    /* Versions: 10.2.3.4 in a `version` column, or beside 1.2.3 and v2.0, is no address. */
    if (c.hits[D_IPV4] && (name_says_version(column) || c.version_only * 10 >= c.nonempty))
        c.hits[D_IPV4] = 0;

    int best = -1;
    double best_rate = 0;
    for (int d = 0; d < N_DETECTORS && c.nonempty; d++) {
        bool agrees = name_kind && strcmp(name_kind, detectors[d].kind) == 0;
        if ((detectors[d].flags & NEEDS_NAME) && !agrees)
            continue;
        size_t hits = c.hits[d];
        if (d == D_NAME && agrees)
            hits = c.name_shape; /* the name says "name": the shape confirms it */
        double rate = (double)hits / (double)c.nonempty;
        double threshold = agrees ? detectors[d].threshold / 2 : detectors[d].threshold;
        size_t min_hits = c.nonempty < 2 ? c.nonempty : 2;
        if (hits < min_hits || rate < threshold)
            continue;
        /* Free text counts only when no whole-value detector decided. */
        if (d == D_FREE_TEXT && best >= 0)
            continue;
        if (best < 0 || rate > best_rate) {
            best = d;
            best_rate = rate;
        }
    }
    if (best >= 0) {
        set_verdict(out, detectors[best].kind, detectors[best].sensitivity,
                    detectors[best].detector, best_rate);
        return 0;
    }
    if (!out->name_signal)
        return 0;
    /* The name says personal and no detector decided: keep it, unless the content shows
     * the values cannot be of that kind. */
    bool contradicted = type_contradicts(type, loose);
    if (loose != L_NONE && c.nonempty >= CONTRADICT_MIN_SAMPLE) {
        double shape = (double)c.loose / (double)c.nonempty;
        double flags = (double)c.boolean_like / (double)c.nonempty;
        contradicted = contradicted || shape < CONTRADICT_RATE || flags >= 0.8;
    }
    if (contradicted) {
        set_verdict(out, NULL, LH_SENS_NONE, "name_contradicted", 0);
        if (c.nonempty)
            out->match_rate = (double)c.loose / (double)c.nonempty;
        else
            out->match_rate = -1;
        return 0;
    }
    set_verdict(out, name_kind, (lh_sensitivity)lh_sensitivity_rank(name_sens), "name", -1);
    return 0;
}

json_t *lh_pii_verdict_json(const lh_pii_verdict *v)
{
    /* Rates to three decimals: evidence for a human, stable across platforms. */
    json_t *rate = v->match_rate < 0 ? json_null() : json_real(round(v->match_rate * 1000) / 1000);
    json_t *evidence = json_pack("{s:s?,s:o,s:I,s:b}", "detector", v->detector, "match_rate", rate,
                                 "sampled", (json_int_t)v->sampled, "name_signal", v->name_signal);
    return json_pack("{s:b,s:s?,s:s,s:o}", "is_pii", v->is_pii, "pii_kind", v->kind, "sensitivity",
                     v->sensitivity ? v->sensitivity : lh_sensitivity_name(LH_SENS_NONE),
                     "pii_evidence", evidence);
}
