/*
 * table.c: what a person reads in a terminal. Aligned text tables for query results and
 * lists, and a JSON re-indenter for --json.
 *
 * Widths are measured in terminal columns, not bytes: a small range table gives East
 * Asian wide characters two columns and combining marks none (enough for names and
 * addresses; not a full UAX #11). Cells are cut on character boundaries, never inside a
 * UTF-8 sequence. Data is untrusted: control characters are printed escaped so a cell can
 * neither break the grid nor send escape sequences to the terminal.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- display width */

typedef struct {
    uint32_t first, last;
} cp_range;

/* Code points that take no column: combining marks, zero-width joiners and selectors. */
static const cp_range zero_width[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD},   {0x0610, 0x061A}, {0x064B, 0x065F},
    {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E},   {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064},   {0x20D0, 0x20FF}, {0xFE00, 0xFE0F},
    {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

/* Code points that take two columns: CJK, Hangul, fullwidth forms, most emoji. */
static const cp_range wide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x25FD, 0x25FE},   {0x2614, 0x2615},   {0x2648, 0x2653},   {0x26AA, 0x26AB},
    {0x26BD, 0x26BE},   {0x26CE, 0x26CE},   {0x26D4, 0x26D4},   {0x26EA, 0x26EA},
    {0x26F5, 0x26F5},   {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},
    {0x270A, 0x270B},   {0x2728, 0x2728},   {0x274C, 0x274C},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x2B1B, 0x2B1C},
    {0x2B50, 0x2B50},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},
    {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F}, {0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF},
    {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static bool in_ranges(uint32_t cp, const cp_range *r, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static size_t cp_width(uint32_t cp)
{
    if (in_ranges(cp, zero_width, sizeof(zero_width) / sizeof(zero_width[0])))
        return 0;
    if (in_ranges(cp, wide, sizeof(wide) / sizeof(wide[0])))
        return 2;
    return 1;
}

/* Decodes one UTF-8 sequence at s (len > 0 bytes available). Returns its length, or 0
 * when the bytes are not well-formed UTF-8 (overlong, surrogate, beyond U+10FFFF,
 * truncated). */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    static const struct {
        unsigned char mask, lead;
        size_t len;
        uint32_t min;
    } forms[] = {
        {0x80, 0x00, 1, 0x0},
        {0xE0, 0xC0, 2, 0x80},
        {0xF0, 0xE0, 3, 0x800},
        {0xF8, 0xF0, 4, 0x10000},
    };
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        if ((s[0] & forms[f].mask) != forms[f].lead)
            continue;
        size_t n = forms[f].len;
        if (n > len)
            return 0;
        uint32_t v = s[0] & (uint32_t)(0x7F >> (n == 1 ? 0 : n));
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (s[i] & 0x3F);
        }
        if (v < forms[f].min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        *cp = v;
        return n;
    }
    return 0;
}

/* One displayable unit of a cell: a character or the escape that stands for it. */
typedef struct {
    char text[16];
    size_t len;      /* bytes in text */
    size_t width;    /* terminal columns */
    size_t consumed; /* bytes of input */
} piece;

static const struct {
    unsigned char c;
    const char *shown;
} control_escapes[] = {
    {'\n', "\\n"},
    {'\r', "\\r"},
    {'\t', "\\t"},
};

static void next_piece(const unsigned char *s, size_t len, piece *p)
{
    uint32_t cp = 0;
    size_t n = utf8_decode(s, len, &cp);
    if (n == 0) {
        memcpy(p->text, "\xEF\xBF\xBD", 3); /* U+FFFD */
        p->len = 3;
        p->width = 1;
        p->consumed = 1;
        return;
    }
    p->consumed = n;
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
        for (size_t i = 0; i < sizeof(control_escapes) / sizeof(control_escapes[0]); i++) {
            if (control_escapes[i].c == cp) {
                p->len = strlen(control_escapes[i].shown);
                memcpy(p->text, control_escapes[i].shown, p->len);
                p->width = p->len;
                return;
            }
        }
        int w = snprintf(p->text, sizeof(p->text), cp < 0x80 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
        p->len = p->width = (size_t)w;
        return;
    }
    memcpy(p->text, s, n);
    p->len = n;
    p->width = cp_width(cp);
}

size_t lh_cli_display_width(const char *s, size_t len)
{
    size_t width = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (len > 0) {
        uint32_t cp;
        size_t n = utf8_decode(u, len, &cp);
        if (n == 0) {
            width++;
            n = 1;
        } else {
            width += cp_width(cp);
        }
        u += n;
        len -= n;
    }
    return width;
}

size_t lh_cli_cell_fit(const char *s, size_t max_width, lh_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    piece p;

    /* First pass: does the whole cell fit? Then nothing is cut. */
    size_t total = 0;
    for (size_t i = 0; i < len; i += p.consumed) {
        next_piece(u + i, len - i, &p);
        total += p.width;
    }
    bool cut = total > max_width;
    size_t limit = cut ? (max_width > 0 ? max_width - 1 : 0) : max_width;

    size_t width = 0;
    for (size_t i = 0; i < len; i += p.consumed) {
        next_piece(u + i, len - i, &p);
        if (width + p.width > limit)
            break;
        lh_buf_append(out, p.text, p.len);
        width += p.width;
    }
    if (cut && max_width > 0) {
        lh_buf_puts(out, "\xE2\x80\xA6"); /* … */
        width++;
    }
    return width;
}

/* ---------------------------------------------------------------- tables */

void lh_table_init(lh_table *t, size_t ncols, const char *const *headers)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->headers = lh_xcalloc(ncols ? ncols : 1, sizeof(char *));
    t->align = lh_xcalloc(ncols ? ncols : 1, sizeof(lh_align));
    for (size_t c = 0; c < ncols; c++)
        t->headers[c] = lh_xstrdup(headers[c] ? headers[c] : "");
}

void lh_table_free(lh_table *t)
{
    if (!t)
        return;
    for (size_t c = 0; c < t->ncols; c++)
        free(t->headers[c]);
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->align);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

void lh_table_set_align(lh_table *t, size_t col, lh_align align)
{
    if (col < t->ncols)
        t->align[col] = align;
}

void lh_table_add_row(lh_table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 16;
        t->cells = lh_xrealloc(t->cells, t->cap_rows * (t->ncols ? t->ncols : 1) * sizeof(char *));
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t c = 0; c < t->ncols; c++)
        row[c] = cells[c] ? lh_xstrdup(cells[c]) : NULL;
    t->nrows++;
}

/* A cell ready to print: its escaped, cut text and its width. */
typedef struct {
    char *text;
    size_t width;
} fitted;

static fitted fit(const char *s)
{
    lh_buf b;
    lh_buf_init(&b);
    size_t w = lh_cli_cell_fit(s ? s : "NULL", LH_TABLE_MAX_CELL_WIDTH, &b);
    lh_buf_putc(&b, '\0');
    return (fitted){b.data, w};
}

static void put_spaces(lh_buf *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lh_buf_putc(out, ' ');
}

/* One line of the grid; the last column gets no trailing padding when left-aligned. */
static void render_line(const lh_table *t, const fitted *cells, const size_t *widths, lh_buf *out)
{
    for (size_t c = 0; c < t->ncols; c++) {
        size_t pad = widths[c] - cells[c].width;
        bool last = c + 1 == t->ncols;
        lh_buf_puts(out, c == 0 ? " " : " | ");
        if (t->align[c] == LH_ALIGN_RIGHT)
            put_spaces(out, pad);
        lh_buf_puts(out, cells[c].text);
        if (t->align[c] == LH_ALIGN_LEFT && !last)
            put_spaces(out, pad);
    }
    lh_buf_putc(out, '\n');
}

void lh_table_render(const lh_table *t, const lh_table_footer *footer, lh_buf *out)
{
    size_t ncols = t->ncols;
    fitted *grid = lh_xcalloc((t->nrows + 1) * (ncols ? ncols : 1), sizeof(fitted));
    size_t *widths = lh_xcalloc(ncols ? ncols : 1, sizeof(size_t));

    for (size_t c = 0; c < ncols; c++)
        grid[c] = fit(t->headers[c]);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            grid[(r + 1) * ncols + c] = fit(t->cells[r * ncols + c]);
    for (size_t i = 0; i < (t->nrows + 1) * ncols; i++)
        if (grid[i].width > widths[i % ncols])
            widths[i % ncols] = grid[i].width;

    if (ncols > 0) {
        render_line(t, grid, widths, out);
        for (size_t c = 0; c < ncols; c++) {
            if (c > 0)
                lh_buf_putc(out, '+');
            for (size_t i = 0; i < widths[c] + 2; i++)
                lh_buf_putc(out, '-');
        }
        lh_buf_putc(out, '\n');
        for (size_t r = 0; r < t->nrows; r++)
            render_line(t, grid + (r + 1) * ncols, widths, out);
    }

    int64_t rows = footer && footer->rows >= 0 ? footer->rows : (int64_t)t->nrows;
    lh_buf_printf(out, "(%lld %s%s)\n", (long long)rows, lh_cli_plural(rows, "row", "rows"),
                  footer && footer->truncated ? ", truncated" : "");

    for (size_t i = 0; i < (t->nrows + 1) * ncols; i++)
        free(grid[i].text);
    free(grid);
    free(widths);
}

const char *lh_cli_plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* ---------------------------------------------------------------- JSON → cells */

char *lh_cli_json_cell(const json_t *v)
{
    char tmp[64];
    switch (json_typeof(v)) {
    case JSON_NULL:
        return NULL;
    case JSON_STRING:
        return lh_xstrdup(json_string_value(v));
    case JSON_INTEGER:
        return lh_xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        /* The shortest text that reads back as the same double. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
            if (strtod(tmp, NULL) == d || isnan(d))
                break;
        }
        return lh_xstrdup(tmp);
    }
    case JSON_TRUE:
        return lh_xstrdup("true");
    case JSON_FALSE:
        return lh_xstrdup("false");
    default:
        return lh_json_dumps(v);
    }
}

/* Numbers a double or an int64 cannot hold exactly (DECIMAL(38,x), HUGEINT, UBIGINT) are
 * common in query results; jansson would refuse big integers and round the rest. So
 * before parsing, every number that is not an int64 integer becomes a JSON string of the
 * server's exact digits: a cell then shows precisely what the server sent. */
static void quote_inexact_numbers(const char *text, size_t len, lh_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && text[j] != '"')
                j += text[j] == '\\' ? 2 : 1;
            size_t end = j < len ? j : len - 1;
            lh_buf_append(out, text + i, end - i + 1);
            i = end;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            lh_buf_putc(out, c);
            continue;
        }
        size_t j = i;
        bool is_int = true;
        while (j < len && strchr("+-0123456789.eE", text[j])) {
            if (strchr(".eE", text[j]))
                is_int = false;
            j++;
        }
        char digits[64];
        size_t n = j - i;
        bool fits = false;
        if (is_int && n < sizeof(digits)) {
            memcpy(digits, text + i, n);
            digits[n] = '\0';
            errno = 0;
            (void)strtoll(digits, NULL, 10);
            fits = errno == 0;
        }
        if (!fits)
            lh_buf_putc(out, '"');
        lh_buf_append(out, text + i, n);
        if (!fits)
            lh_buf_putc(out, '"');
        i = j - 1;
    }
}

json_t *lh_cli_parse_query_result(const char *text, size_t len, lh_error *err)
{
    lh_buf b;
    lh_buf_init(&b);
    quote_inexact_numbers(text, len, &b);
    json_t *doc = lh_json_parse_object(b.data ? b.data : "", b.len, err);
    lh_buf_free(&b);
    return doc;
}

/* DuckDB type names whose values read best right-aligned. */
static const struct {
    const char *name;
    bool is_prefix;
} numeric_types[] = {
    {"TINYINT", false}, {"SMALLINT", false}, {"INTEGER", false},   {"BIGINT", false},
    {"HUGEINT", false}, {"UTINYINT", false}, {"USMALLINT", false}, {"UINTEGER", false},
    {"UBIGINT", false}, {"UHUGEINT", false}, {"FLOAT", false},     {"DOUBLE", false},
    {"DECIMAL", true},
};

static bool is_numeric_type(const char *type)
{
    if (!type)
        return false;
    for (size_t i = 0; i < sizeof(numeric_types) / sizeof(numeric_types[0]); i++) {
        const char *n = numeric_types[i].name;
        if (numeric_types[i].is_prefix ? strncmp(type, n, strlen(n)) == 0 : strcmp(type, n) == 0)
            return true;
    }
    return false;
}

int lh_table_from_query_result(const json_t *result, lh_table *t, lh_error *err)
{
    int rc = 0;
    const json_t *columns = json_object_get(result, "columns");
    const json_t *rows = json_object_get(result, "rows");
    size_t ncols = json_array_size(columns);
    const char **names = lh_xcalloc(ncols ? ncols : 1, sizeof(char *));
    char **cells = lh_xcalloc(ncols ? ncols : 1, sizeof(char *));

    memset(t, 0, sizeof(*t));
    if (!json_is_array(columns) || !json_is_array(rows)) {
        rc = lh_error_set(err, LH_EINVAL, "the server's answer has no columns/rows arrays");
        goto out;
    }
    for (size_t c = 0; c < ncols; c++) {
        const json_t *col = json_array_get(columns, c);
        names[c] = lh_json_str(col, "name");
        if (!names[c])
            names[c] = json_is_string(col) ? json_string_value(col) : "?";
    }
    lh_table_init(t, ncols, names);
    for (size_t c = 0; c < ncols; c++)
        if (is_numeric_type(lh_json_str(json_array_get(columns, c), "type")))
            lh_table_set_align(t, c, LH_ALIGN_RIGHT);

    size_t r;
    const json_t *row;
    json_array_foreach(rows, r, row)
    {
        if (!json_is_array(row) || json_array_size(row) != ncols) {
            rc = lh_error_set(err, LH_EINVAL, "row %zu of the answer does not have %zu values", r,
                              ncols);
            goto out;
        }
        for (size_t c = 0; c < ncols; c++)
            cells[c] = lh_cli_json_cell(json_array_get(row, c));
        lh_table_add_row(t, (const char *const *)cells);
        for (size_t c = 0; c < ncols; c++) {
            free(cells[c]);
            cells[c] = NULL;
        }
    }
out:
    if (rc)
        lh_table_free(t);
    free(names);
    free(cells);
    return rc;
}

/* ---------------------------------------------------------------- JSON pretty-print */

static void newline_indent(lh_buf *out, int depth)
{
    lh_buf_putc(out, '\n');
    for (int i = 0; i < depth; i++)
        lh_buf_puts(out, "  ");
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void lh_cli_json_pretty(const char *text, size_t len, lh_buf *out)
{
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            /* Copy the string literal verbatim, escapes included. */
            size_t j = i + 1;
            while (j < len && text[j] != '"')
                j += text[j] == '\\' ? 2 : 1;
            if (j >= len)
                j = len - 1;
            lh_buf_append(out, text + i, j - i + 1);
            i = j;
            continue;
        }
        if (is_json_space(c))
            continue;
        switch (c) {
        case '{':
        case '[': {
            char close = c == '{' ? '}' : ']';
            size_t j = i + 1;
            while (j < len && is_json_space(text[j]))
                j++;
            lh_buf_putc(out, c);
            if (j < len && text[j] == close) { /* {} and [] stay on one line */
                lh_buf_putc(out, close);
                i = j;
            } else {
                newline_indent(out, ++depth);
            }
            break;
        }
        case '}':
        case ']':
            depth = depth > 0 ? depth - 1 : 0;
            newline_indent(out, depth);
            lh_buf_putc(out, c);
            break;
        case ',':
            lh_buf_putc(out, ',');
            newline_indent(out, depth);
            break;
        case ':':
            lh_buf_puts(out, ": ");
            break;
        default:
            lh_buf_putc(out, c);
        }
    }
    lh_buf_putc(out, '\n');
}
