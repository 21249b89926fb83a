/*
 * pii.c: PII detection by column name.
 *
 * A column name is cut into lowercase tokens at '_', '-', spaces and other punctuation,
 * at camelCase humps ("customerEmail" -> customer|email, "IPAddress" -> ip|address) and
 * between letters and digits ("address1" -> address|1). Rules then match whole tokens,
 * never substrings, so "filename", "phonetic" and "order_number" do not look like a name,
 * a phone or an account number.
 *
 * The rule table is ordered: the first rule that matches decides. Rules with a NULL kind
 * are exceptions ("zip file", "health check") listed before the rules they override, and
 * specific rules ("ip address", "email address") come before general ones ("address").
 *
 * Match modes:
 *   ANY     the rule's tokens appear, contiguous, anywhere in the name;
 *   WHOLE   the name is exactly the rule's tokens ("name", but not "product_name");
 *   SUFFIX  the name ends with the rule's tokens ("home_mobile", but not "mobile_app").
 */
#include "catalog/catalog_internal.h"

#include <string.h>

#define TOKENS_MAX 16
#define TOKEN_LEN 40

typedef enum { ANY, WHOLE, SUFFIX } match_mode;

typedef struct pii_rule {
    const char *tokens[4]; /* NULL-terminated */
    match_mode mode;
    const char *kind; /* NULL: not personal data (an exception to later rules) */
    lh_sensitivity sensitivity;
} pii_rule;

#define PII LH_SENS_PII
#define PHI LH_SENS_PHI
#define FIN LH_SENS_FINANCIAL
#define BIO LH_SENS_BIOMETRIC
#define NOT NULL, LH_SENS_NONE

static const pii_rule rules[] = {
    /* Exceptions first: words that look personal but are not in these phrases. */
    {{"zip", "file"}, ANY, NOT},
    {{"health", "check"}, ANY, NOT},
    {{"healthcheck"}, ANY, NOT},
    {{"web", "address"}, ANY, NOT},
    {{"server", "address"}, ANY, NOT},
    {{"host", "address"}, ANY, NOT},
    {{"is", "mobile"}, ANY, NOT},
    {{"key", "fingerprint"}, ANY, NOT},
    {{"file", "fingerprint"}, ANY, NOT},
    {{"cert", "fingerprint"}, ANY, NOT},
    {{"certificate", "fingerprint"}, ANY, NOT},
    {{"weather", "condition"}, ANY, NOT},
    {{"item", "condition"}, ANY, NOT},
    {{"product", "condition"}, ANY, NOT},
    {{"road", "condition"}, ANY, NOT},
    {{"payment", "condition"}, ANY, NOT},
    {{"contract", "condition"}, ANY, NOT},

    /* Network and device identifiers (before "address"). */
    {{"ip", "address"}, ANY, "ip_address", PII},
    {{"ipaddress"}, ANY, "ip_address", PII},
    {{"ip"}, ANY, "ip_address", PII},
    {{"ipv"}, ANY, "ip_address", PII},
    {{"mac", "address"}, ANY, "device_id", PII},
    {{"macaddress"}, ANY, "device_id", PII},
    {{"imei"}, ANY, "device_id", PII},
    {{"device", "id"}, ANY, "device_id", PII},
    {{"device", "fingerprint"}, ANY, "device_id", PII},
    {{"browser", "fingerprint"}, ANY, "device_id", PII},

    /* Contact. */
    {{"email"}, ANY, "email", PII},
    {{"emails"}, ANY, "email", PII},
    {{"e", "mail"}, ANY, "email", PII},
    {{"emailaddress"}, ANY, "email", PII},
    {{"mail", "address"}, ANY, "email", PII},
    {{"mail"}, WHOLE, "email", PII},
    {{"phone"}, ANY, "phone", PII},
    {{"phones"}, ANY, "phone", PII},
    {{"phonenumber"}, ANY, "phone", PII},
    {{"telephone"}, ANY, "phone", PII},
    {{"tel"}, ANY, "phone", PII},
    {{"cellphone"}, ANY, "phone", PII},
    {{"cell", "number"}, ANY, "phone", PII},
    {{"mobilephone"}, ANY, "phone", PII},
    {{"homephone"}, ANY, "phone", PII},
    {{"workphone"}, ANY, "phone", PII},
    {{"mobile", "number"}, ANY, "phone", PII},
    {{"mobile", "no"}, ANY, "phone", PII},
    {{"mobile", "num"}, ANY, "phone", PII},
    {{"mobile"}, SUFFIX, "phone", PII},
    {{"fax"}, ANY, "phone", PII},
    {{"msisdn"}, ANY, "phone", PII},

    /* Government identifiers. */
    {{"ssn"}, ANY, "ssn", PII},
    {{"social", "security"}, ANY, "ssn", PII},
    {{"socialsecurity"}, ANY, "ssn", PII},
    {{"passport"}, ANY, "passport", PII},
    {{"national", "id"}, ANY, "national_id", PII},
    {{"nationalid"}, ANY, "national_id", PII},
    {{"national", "identifier"}, ANY, "national_id", PII},
    {{"national", "insurance"}, ANY, "national_id", PII},
    {{"nino"}, ANY, "national_id", PII},
    {{"driver", "license"}, ANY, "drivers_license", PII},
    {{"drivers", "license"}, ANY, "drivers_license", PII},
    {{"driver", "licence"}, ANY, "drivers_license", PII},
    {{"drivers", "licence"}, ANY, "drivers_license", PII},
    {{"driving", "license"}, ANY, "drivers_license", PII},
    {{"driving", "licence"}, ANY, "drivers_license", PII},
    {{"tax", "id"}, ANY, "tax_id", PII},
    {{"taxpayer", "id"}, ANY, "tax_id", PII},
    {{"tin"}, WHOLE, "tax_id", PII},

    /* Money. */
    {{"credit", "card"}, ANY, "credit_card", FIN},
    {{"creditcard"}, ANY, "credit_card", FIN},
    {{"card", "number"}, ANY, "credit_card", FIN},
    {{"cardnumber"}, ANY, "credit_card", FIN},
    {{"cvv"}, ANY, "credit_card", FIN},
    {{"cvc"}, ANY, "credit_card", FIN},
    {{"iban"}, ANY, "bank_account", FIN},
    {{"account", "number"}, ANY, "bank_account", FIN},
    {{"accountnumber"}, ANY, "bank_account", FIN},
    {{"bank", "account"}, ANY, "bank_account", FIN},
    {{"routing", "number"}, ANY, "bank_account", FIN},
    {{"sort", "code"}, ANY, "bank_account", FIN},
    {{"credit", "score"}, ANY, "credit_score", FIN},
    {{"salary"}, ANY, "salary", FIN},
    {{"salaries"}, ANY, "salary", FIN},
    {{"wage"}, ANY, "salary", FIN},
    {{"wages"}, ANY, "salary", FIN},
    {{"income"}, ANY, "salary", FIN},
    {{"compensation"}, ANY, "salary", FIN},
    {{"earnings"}, ANY, "salary", FIN},
    {{"bonus"}, ANY, "salary", FIN},
    {{"payroll"}, ANY, "salary", FIN},
    {{"pay", "rate"}, ANY, "salary", FIN},
    {{"pay", "grade"}, ANY, "salary", FIN},
    {{"gross", "pay"}, ANY, "salary", FIN},
    {{"net", "pay"}, ANY, "salary", FIN},
    {{"base", "pay"}, ANY, "salary", FIN},

    /* Birth and age (place of birth before the general "birth"). */
    {{"place", "of", "birth"}, ANY, "place_of_birth", PII},
    {{"birth", "place"}, ANY, "place_of_birth", PII},
    {{"birthplace"}, ANY, "place_of_birth", PII},
    {{"country", "of", "birth"}, ANY, "place_of_birth", PII},
    {{"birth", "country"}, ANY, "place_of_birth", PII},
    {{"city", "of", "birth"}, ANY, "place_of_birth", PII},
    {{"birth", "city"}, ANY, "place_of_birth", PII},
    {{"dob"}, ANY, "date_of_birth", PII},
    {{"birth"}, ANY, "date_of_birth", PII},
    {{"birthday"}, ANY, "date_of_birth", PII},
    {{"birthdate"}, ANY, "date_of_birth", PII},
    {{"dateofbirth"}, ANY, "date_of_birth", PII},
    {{"age"}, SUFFIX, "age", PII},

    /* Health. */
    {{"medical"}, ANY, "medical", PHI},
    {{"diagnosis"}, ANY, "medical", PHI},
    {{"diagnoses"}, ANY, "medical", PHI},
    {{"health"}, ANY, "medical", PHI},
    {{"condition"}, ANY, "medical", PHI},
    {{"medication"}, ANY, "medical", PHI},
    {{"medications"}, ANY, "medical", PHI},
    {{"medicine"}, ANY, "medical", PHI},
    {{"prescription"}, ANY, "medical", PHI},
    {{"prescriptions"}, ANY, "medical", PHI},
    {{"icd"}, ANY, "medical", PHI},
    {{"allergy"}, ANY, "medical", PHI},
    {{"allergies"}, ANY, "medical", PHI},
    {{"disability"}, ANY, "medical", PHI},
    {{"disabilities"}, ANY, "medical", PHI},
    {{"treatment"}, ANY, "medical", PHI},
    {{"therapy"}, ANY, "medical", PHI},
    {{"symptom"}, ANY, "medical", PHI},
    {{"symptoms"}, ANY, "medical", PHI},
    {{"clinical"}, ANY, "medical", PHI},
    {{"vaccination"}, ANY, "medical", PHI},
    {{"pregnancy"}, ANY, "medical", PHI},
    {{"blood", "type"}, ANY, "medical", PHI},
    {{"mrn"}, ANY, "medical", PHI},

    /* Biometrics. */
    {{"biometric"}, ANY, "biometric", BIO},
    {{"biometrics"}, ANY, "biometric", BIO},
    {{"fingerprint"}, ANY, "biometric", BIO},
    {{"fingerprints"}, ANY, "biometric", BIO},
    {{"faceprint"}, ANY, "biometric", BIO},
    {{"face", "template"}, ANY, "biometric", BIO},
    {{"face", "embedding"}, ANY, "biometric", BIO},
    {{"face", "encoding"}, ANY, "biometric", BIO},
    {{"facial"}, ANY, "biometric", BIO},
    {{"retina"}, ANY, "biometric", BIO},
    {{"iris", "scan"}, ANY, "biometric", BIO},
    {{"voiceprint"}, ANY, "biometric", BIO},
    {{"palm", "print"}, ANY, "biometric", BIO},

    /* Postal address (after ip/mac/email address). */
    {{"address"}, ANY, "address", PII},
    {{"addresses"}, ANY, "address", PII},
    {{"addr"}, ANY, "address", PII},
    {{"street"}, ANY, "address", PII},
    {{"streetaddress"}, ANY, "address", PII},
    {{"zip"}, ANY, "address", PII},
    {{"zipcode"}, ANY, "address", PII},
    {{"postcode"}, ANY, "address", PII},
    {{"post", "code"}, ANY, "address", PII},
    {{"postal"}, ANY, "address", PII},
    {{"postalcode"}, ANY, "address", PII},
    {{"house", "number"}, ANY, "address", PII},

    /* Special categories and demographics. */
    {{"sexual", "orientation"}, ANY, "sexual_orientation", PII},
    {{"gender"}, ANY, "gender", PII},
    {{"sex"}, ANY, "gender", PII},
    {{"ethnicity"}, ANY, "ethnicity", PII},
    {{"ethnic"}, ANY, "ethnicity", PII},
    {{"race"}, ANY, "ethnicity", PII},
    {{"religion"}, ANY, "religion", PII},
    {{"religious"}, ANY, "religion", PII},
    {{"political"}, ANY, "political_opinion", PII},
    {{"trade", "union"}, ANY, "trade_union", PII},
    {{"union", "membership"}, ANY, "trade_union", PII},
    {{"marital"}, ANY, "marital_status", PII},
    {{"nationality"}, ANY, "nationality", PII},
    {{"citizenship"}, ANY, "nationality", PII},
    {{"latitude"}, ANY, "geolocation", PII},
    {{"longitude"}, ANY, "geolocation", PII},
    {{"geolocation"}, ANY, "geolocation", PII},
    {{"gps"}, ANY, "geolocation", PII},
    {{"lat"}, WHOLE, "geolocation", PII},
    {{"lng"}, WHOLE, "geolocation", PII},
    {{"lon"}, WHOLE, "geolocation", PII},

    /* Account names (before person names: "user_name" is a login, not a name). */
    {{"username"}, ANY, "username", PII},
    {{"user", "name"}, ANY, "username", PII},
    {{"login"}, WHOLE, "username", PII},
    {{"login", "name"}, ANY, "username", PII},
    {{"login", "id"}, ANY, "username", PII},
    {{"screen", "name"}, ANY, "username", PII},
    {{"screenname"}, ANY, "username", PII},

    /* Person names. "name" alone is a person's name; "product_name" is not, so a
     * qualified "..._name" counts only with a word that denotes a person. */
    {{"first", "name"}, ANY, "name", PII},
    {{"firstname"}, ANY, "name", PII},
    {{"last", "name"}, ANY, "name", PII},
    {{"lastname"}, ANY, "name", PII},
    {{"full", "name"}, ANY, "name", PII},
    {{"fullname"}, ANY, "name", PII},
    {{"middle", "name"}, ANY, "name", PII},
    {{"middlename"}, ANY, "name", PII},
    {{"given", "name"}, ANY, "name", PII},
    {{"givenname"}, ANY, "name", PII},
    {{"family", "name"}, ANY, "name", PII},
    {{"familyname"}, ANY, "name", PII},
    {{"maiden", "name"}, ANY, "name", PII},
    {{"maidenname"}, ANY, "name", PII},
    {{"legal", "name"}, ANY, "name", PII},
    {{"surname"}, ANY, "name", PII},
    {{"forename"}, ANY, "name", PII},
    {{"nickname"}, ANY, "name", PII},
    {{"fname"}, ANY, "name", PII},
    {{"lname"}, ANY, "name", PII},
    {{"name"}, WHOLE, "name", PII},
    {{"names"}, WHOLE, "name", PII},
    {{"customer", "name"}, ANY, "name", PII},
    {{"employee", "name"}, ANY, "name", PII},
    {{"candidate", "name"}, ANY, "name", PII},
    {{"patient", "name"}, ANY, "name", PII},
    {{"person", "name"}, ANY, "name", PII},
    {{"contact", "name"}, ANY, "name", PII},
    {{"member", "name"}, ANY, "name", PII},
    {{"applicant", "name"}, ANY, "name", PII},
    {{"client", "name"}, ANY, "name", PII},
    {{"student", "name"}, ANY, "name", PII},
    {{"worker", "name"}, ANY, "name", PII},
    {{"manager", "name"}, ANY, "name", PII},
    {{"holder", "name"}, ANY, "name", PII},
    {{"cardholder", "name"}, ANY, "name", PII},
    {{"spouse", "name"}, ANY, "name", PII},
    {{"parent", "name"}, ANY, "name", PII},
    {{"guardian", "name"}, ANY, "name", PII},
    {{"recipient", "name"}, ANY, "name", PII},
    {{"beneficiary", "name"}, ANY, "name", PII},
    {{"emergency", "contact"}, ANY, "name", PII},
};

typedef struct tokens {
    char tok[TOKENS_MAX][TOKEN_LEN];
    size_t n;
    bool truncated; /* more tokens than TOKENS_MAX: WHOLE and SUFFIX cannot be decided */
} tokens;

typedef enum { C_SEP, C_LOWER, C_UPPER, C_DIGIT } char_class;

static char_class classify(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return C_LOWER;
    if (c >= 'A' && c <= 'Z')
        return C_UPPER;
    if (c >= '0' && c <= '9')
        return C_DIGIT;
    if (c >= 0x80)
        return C_LOWER; /* bytes of non-ASCII letters stay inside a token */
    return C_SEP;
}

/* True when a new token starts at s[i] (which is not a separator). */
static bool starts_token(const unsigned char *s, size_t i)
{
    if (i == 0)
        return true;
    char_class prev = classify(s[i - 1]), cur = classify(s[i]);
    if (prev == C_SEP)
        return true;
    if ((prev == C_DIGIT) != (cur == C_DIGIT))
        return true;
    if (prev == C_LOWER && cur == C_UPPER)
        return true; /* customerEmail */
    /* IPAddress: the last capital of a run starts a new word when a lowercase follows. */
    return prev == C_UPPER && cur == C_UPPER && classify(s[i + 1]) == C_LOWER;
}

static void tokenize(const char *name, tokens *t)
{
    const unsigned char *s = (const unsigned char *)name;
    t->n = 0;
    t->truncated = false;
    size_t len = 0;
    bool too_long = false;
    for (size_t i = 0; s[i]; i++) {
        if (classify(s[i]) == C_SEP)
            continue;
        if (starts_token(s, i)) {
            if (t->n == TOKENS_MAX) {
                t->truncated = true;
                return;
            }
            t->n++;
            len = 0;
            too_long = false;
        }
        char *tok = t->tok[t->n - 1];
        if (too_long)
            continue;
        if (len + 1 >= TOKEN_LEN) {
            /* An overlong token matches no rule (rules are short words). */
            tok[0] = '\0';
            too_long = true;
            continue;
        }
        unsigned char c = s[i];
        tok[len++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        tok[len] = '\0';
    }
}

static bool matches_at(const tokens *t, size_t at, const pii_rule *r)
{
    for (size_t k = 0; k < 4 && r->tokens[k]; k++)
        if (at + k >= t->n || strcmp(t->tok[at + k], r->tokens[k]) != 0)
            return false;
    return true;
}

static bool rule_matches(const tokens *t, const pii_rule *r)
{
    size_t k = 0;
    while (k < 4 && r->tokens[k])
        k++;
    if (k > t->n)
        return false;
    switch (r->mode) {
    case WHOLE:
        return !t->truncated && k == t->n && matches_at(t, 0, r);
    case SUFFIX:
        return !t->truncated && matches_at(t, t->n - k, r);
    case ANY:
        for (size_t at = 0; at + k <= t->n; at++)
            if (matches_at(t, at, r))
                return true;
        return false;
    }
    return false;
}

int lh_pii_by_name(const char *column, const char **kind, const char **sensitivity)
{
    if (kind)
        *kind = NULL;
    if (sensitivity)
        *sensitivity = NULL;
    if (!column)
        return 0;
    tokens t;
    tokenize(column, &t);
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (!rule_matches(&t, &rules[i]))
            continue;
        if (!rules[i].kind)
            return 0;
        if (kind)
            *kind = rules[i].kind;
        if (sensitivity)
            *sensitivity = lh_sensitivity_name(rules[i].sensitivity);
        return 1;
    }
    return 0;
}

bool lh_pii__name_has_token(const char *column, const char *token)
{
    if (!column || !token)
        return false;
    tokens t;
    tokenize(column, &t);
    for (size_t i = 0; i < t.n; i++)
        if (strcmp(t.tok[i], token) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- sensitivity levels */

/* The one spelling of each level's name (catalog.h's lh_sensitivity gives the order). */
static const char *const sensitivity_names[LH_SENS_COUNT] = {
    [LH_SENS_NONE] = "None",           [LH_SENS_PII] = "PII",
    [LH_SENS_FINANCIAL] = "Financial", [LH_SENS_PHI] = "PHI",
    [LH_SENS_BIOMETRIC] = "Biometric",
};

const char *lh_sensitivity_name(int rank)
{
    return rank >= 0 && rank < LH_SENS_COUNT ? sensitivity_names[rank] : NULL;
}

int lh_sensitivity_rank(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < LH_SENS_COUNT; i++)
        if (strcmp(s, sensitivity_names[i]) == 0)
            return i;
    return -1;
}

void lh_sensitivity_list(lh_buf *out)
{
    for (int i = 0; i < LH_SENS_COUNT; i++)
        lh_buf_printf(out, "%s%s", i ? ", " : "", sensitivity_names[i]);
}
