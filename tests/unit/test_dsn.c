/*
 * test_dsn.c: DSNs of database sources (sources/dsn.c) and the decimal helpers readers
 * share (sources/common.c). Every accepted form parses to the same fields; redaction
 * removes the password from every form (and from what it cannot parse); messages about a
 * bad DSN never quote it; scrubbing takes the password out of a library's message.
 */
#include "testutil.h"

#include "sources/sources_internal.h"

#include <stdlib.h>
#include <string.h>

static lh_dsn parse_ok(lh_source_kind kind, const char *dsn)
{
    lh_dsn d;
    lh_error err = {0};
    if (lh_dsn_parse(kind, dsn, &d, &err) != 0)
        fail_msg("'%s' did not parse: %s", dsn, err.message);
    return d;
}

static void test_uri_forms(void **state)
{
    (void)state;
    lh_dsn d = parse_ok(LH_SOURCE_POSTGRES,
                        "postgresql://hr%40corp:p%3Ass@db.example:6543/people?sslmode=require");
    assert_string_equal(d.user, "hr@corp");
    assert_string_equal(d.password, "p:ss");
    assert_string_equal(d.host, "db.example");
    assert_int_equal(d.port, 6543);
    assert_string_equal(d.database, "people");
    assert_string_equal(d.sslmode, "require");
    char *loc = lh_dsn_location(&d);
    assert_string_equal(loc, "db.example:6543/people");
    free(loc);
    lh_dsn_free(&d);

    /* a raw '@' in the password: the user part ends at the last '@' */
    d = parse_ok(LH_SOURCE_MYSQL, "mysql://app:s3cr@t@127.0.0.1/hr?ssl-mode=REQUIRED");
    assert_string_equal(d.password, "s3cr@t");
    assert_string_equal(d.host, "127.0.0.1");
    assert_int_equal(d.port, 0);
    assert_string_equal(d.sslmode, "require");
    loc = lh_dsn_location(&d);
    assert_string_equal(loc, "127.0.0.1:3306/hr");
    free(loc);
    lh_dsn_free(&d);

    d = parse_ok(LH_SOURCE_POSTGRES, "postgres://[::1]:5433/x");
    assert_string_equal(d.host, "::1");
    assert_int_equal(d.port, 5433);
    assert_null(d.user);
    assert_null(d.password);
    loc = lh_dsn_location(&d);
    assert_string_equal(loc, "[::1]:5433/x");
    free(loc);
    lh_dsn_free(&d);

    d = parse_ok(LH_SOURCE_MYSQL, "mariadb://u@h/db?password=qq");
    assert_string_equal(d.password, "qq");
    lh_dsn_free(&d);
}

static void test_pairs_form(void **state)
{
    (void)state;
    lh_dsn d =
        parse_ok(LH_SOURCE_POSTGRES, "host=h port = 5432 user=u dbname=db connect_timeout=3");
    assert_int_equal(d.port, 5432);
    assert_null(d.password);
    lh_dsn_free(&d);
    d = parse_ok(LH_SOURCE_POSTGRES, "host=h user=u password='a \\'b\\\\c' dbname=db");
    assert_string_equal(d.password, "a 'b\\c");
    assert_string_equal(d.database, "db");
    lh_dsn_free(&d);
    d = parse_ok(LH_SOURCE_MYSQL, "host=h database=db user=u password=pw sslmode=disable");
    assert_string_equal(d.database, "db");
    assert_string_equal(d.sslmode, "disable");
    lh_dsn_free(&d);
}

static void test_refusals_never_quote(void **state)
{
    (void)state;
    static const struct {
        lh_source_kind kind;
        const char *dsn;
    } bad[] = {
        {LH_SOURCE_POSTGRES, ""},
        {LH_SOURCE_POSTGRES, "mysql://u:SECRETPW@h/db"},         /* wrong scheme */
        {LH_SOURCE_MYSQL, "mysql://u:SECRETPW@h:99999/db"},      /* port */
        {LH_SOURCE_MYSQL, "host=h password='SECRETPW"},          /* unterminated quote */
        {LH_SOURCE_MYSQL, "host=h password=SECRETPW pasword=x"}, /* unknown key */
        {LH_SOURCE_POSTGRES, "postgresql://u:SECRETPW%zz@h/db"}, /* bad escape */
        {LH_SOURCE_POSTGRES, "host=h sslmode=sometimes password=SECRETPW"},
        {LH_SOURCE_POSTGRES, "just words SECRETPW"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lh_dsn d;
        lh_error err = {0};
        assert_int_equal(lh_dsn_parse(bad[i].kind, bad[i].dsn, &d, &err), LH_EINVAL);
        assert_null(strstr(err.message, "SECRETPW"));
        assert_true(strlen(err.message) > 10);
    }
}

static void test_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"postgresql://hr:SECRETPW@db:5432/people?sslmode=require",
         "postgresql://hr:***@db:5432/people?sslmode=require"},
        {"mysql://app:SEC@RETPW@127.0.0.1/hr", "mysql://app:***@127.0.0.1/hr"},
        {"postgresql://db/people?user=u&password=SECRETPW&sslmode=disable",
         "postgresql://db/people?user=u&password=***&sslmode=disable"},
        {"postgresql://hr@db/people", "postgresql://hr@db/people"},
        {"host=db user=hr password=SECRETPW dbname=people",
         "host='db' user='hr' password=*** dbname='people'"},
        {"host=db password = 'SECRET PW' dbname=people", "host='db' password=*** dbname='people'"},
        {"host=db password='SECRETPW", "<unparsable DSN>"},
        /* URIs that do not parse show nothing of themselves: a raw '?' in the password ends
         * the authority early, and the whole DSN was copied out unredacted */
        {"postgresql://u:SECRET?PW@h/db", "<unparsable DSN>"},
        {"mysql://u:SECRET?PW@h/db", "<unparsable DSN>"},
        {"postgresql://u:SECRETPW@h:notaport/db", "<unparsable DSN>"},
        {"oracle://u:SECRETPW@h/db", "<unparsable DSN>"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = lh_dsn_redact(cases[i].in);
        assert_string_equal(r, cases[i].out);
        assert_null(strstr(r, "SECRET"));
        free(r);
    }
}

static void test_scrub(void **state)
{
    (void)state;
    lh_dsn d = parse_ok(LH_SOURCE_POSTGRES, "postgresql://u:hunter22@h/db");
    lh_error err;
    lh_error_set(&err, LH_EUPSTREAM, "auth failed for 'hunter22' via postgresql://u:hunter22@h/db");
    lh_dsn_scrub(&err, &d, "postgresql://u:hunter22@h/db");
    assert_null(strstr(err.message, "hunter22"));
    assert_non_null(strstr(err.message, "auth failed"));
    lh_dsn_free(&d);
}

static void test_decimal_parse(void **state)
{
    (void)state;
    __int128 u;
    assert_int_equal(lh_decimal_parse("-12.5", 5, 10, 2, &u), 0);
    assert_true(u == -1250);
    assert_int_equal(lh_decimal_parse("+3", 2, 5, 0, &u), 0);
    assert_true(u == 3);
    assert_int_equal(lh_decimal_parse(".5", 2, 3, 1, &u), 0);
    assert_true(u == 5);
    assert_int_equal(lh_decimal_parse("1.2300", 6, 5, 2, &u), 0); /* zeros past the scale */
    assert_true(u == 123);
    assert_int_equal(lh_decimal_parse("1.235", 5, 5, 2, &u), -1); /* not exact */
    assert_int_equal(lh_decimal_parse("1000", 4, 3, 0, &u), -1);  /* too many digits */
    assert_int_equal(lh_decimal_parse("99.99", 5, 4, 2, &u), 0);
    assert_int_equal(lh_decimal_parse("100.00", 6, 4, 2, &u), -1);
    assert_int_equal(lh_decimal_parse("", 0, 4, 2, &u), -1);
    assert_int_equal(lh_decimal_parse("-", 1, 4, 2, &u), -1);
    assert_int_equal(lh_decimal_parse("1e3", 3, 4, 0, &u), -1);
    assert_int_equal(lh_decimal_parse("NaN", 3, 4, 0, &u), -1);
    const char *max38 = "99999999999999999999999999999999999999";
    assert_int_equal(lh_decimal_parse(max38, strlen(max38), 38, 0, &u), 0);
    assert_int_equal(lh_decimal_parse("999999999999999999999999999999999999990", 39, 38, 0, &u),
                     -1);
}

static void test_decimal_vectors(void **state)
{
    (void)state;
    static const struct {
        int width, scale;
    } kinds[] = {{4, 1}, {9, 2}, {18, 3}, {38, 10}};
    for (size_t k = 0; k < 4; k++) {
        duckdb_logical_type t =
            duckdb_create_decimal_type((uint8_t)kinds[k].width, (uint8_t)kinds[k].scale);
        duckdb_data_chunk chunk = duckdb_create_data_chunk(&t, 1);
        duckdb_vector v = duckdb_data_chunk_get_vector(chunk, 0);
        __int128 max = 1;
        for (int i = 0; i < kinds[k].width; i++)
            max *= 10;
        assert_int_equal(lh_vec_put_decimal(v, t, 0, max - 1), 0);
        assert_int_equal(lh_vec_put_decimal(v, t, 1, -(max - 1)), 0);
        assert_int_equal(lh_vec_put_decimal(v, t, 2, max), -1);
        lh_vec_set_null(v, 3);
        duckdb_data_chunk_set_size(chunk, 4);
        uint64_t *validity = duckdb_vector_get_validity(v);
        assert_false(duckdb_validity_row_is_valid(validity, 3));
        assert_true(duckdb_validity_row_is_valid(validity, 0));
        duckdb_destroy_data_chunk(&chunk);
        duckdb_destroy_logical_type(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_forms),
        cmocka_unit_test(test_pairs_form),
        cmocka_unit_test(test_refusals_never_quote),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_scrub),
        cmocka_unit_test(test_decimal_parse),
        cmocka_unit_test(test_decimal_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
