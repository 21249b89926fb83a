/*
 * checkpoint.c: the audit log's signing key and its C2SP signed notes (issue 12; formats
 * in docs/AUDIT.md "Verifiable log"; C2SP signed-note and tlog-checkpoint).
 *
 * A checkpoint note is
 *     <origin>\n<tree size, decimal>\n<base64 root hash>\n\n— <name> <base64(key id ‖ sig)>\n
 * where the Ed25519 signature covers the text before the blank line (its final newline
 * included) and key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[0..4). The origin is the
 * signer name: one name identifies the log and its key.
 *
 * Invariants: the secret key lives only in lh_signer (sodium_malloc'd, wiped on free);
 * messages name the key file's path, never its bytes, length aside.
 */
#include "compliance_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EM_DASH "\xE2\x80\x94"
#define ALG_ED25519 0x01

struct lh_signer {
    char name[LH_SIGNER_NAME_MAX];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char *sk; /* sodium_malloc: seed ‖ public key */
    unsigned char key_id[4];
};

/* ---------------------------------------------------------------- base64 */

char *lh_b64_encode(const unsigned char *data, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *out = lh_xmalloc(cap);
    sodium_bin2base64(out, cap, data, n, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int lh_b64_decode(const char *s, unsigned char *out, size_t cap, size_t *n)
{
    const char *end = NULL;
    if (!s ||
        sodium_base642bin(out, cap, s, strlen(s), NULL, n, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        *end != '\0')
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- keys */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= LH_SIGNER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= 0x20 || name[i] >= 0x7F || name[i] == '+')
            return false;
    return true;
}

void lh_signer_key_id(const char *name, const unsigned char pk[32], unsigned char id[4])
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    const unsigned char sep[2] = {0x0A, ALG_ED25519};
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)name, strlen(name));
    crypto_hash_sha256_update(&st, sep, 2);
    crypto_hash_sha256_update(&st, pk, 32);
    crypto_hash_sha256_final(&st, h);
    memcpy(id, h, 4);
}

lh_signer *lh_signer_from_seed(const unsigned char seed[32], const char *name, lh_error *err)
{
    char host[128] = "localhost";
    char dflt[LH_SIGNER_NAME_MAX];
    if (sodium_init() < 0) {
        lh_error_set(err, LH_EINTERNAL, "libsodium failed to initialise");
        return NULL;
    }
    if (!name || !*name) {
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(dflt, sizeof(dflt), "lakehouse/%s", host);
        name = dflt;
    }
    if (!name_ok(name)) {
        lh_error_set(err, LH_EINVAL,
                     "the audit log's signer name (LH_AUDIT_LOG_ORIGIN) must be 1 to %d printable "
                     "ASCII characters without spaces or '+'",
                     LH_SIGNER_NAME_MAX - 1);
        return NULL;
    }
    lh_signer *s = lh_xcalloc(1, sizeof(*s));
    s->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (!s->sk)
        abort();
    crypto_sign_seed_keypair(s->pk, s->sk, seed);
    snprintf(s->name, sizeof(s->name), "%s", name);
    lh_signer_key_id(s->name, s->pk, s->key_id);
    return s;
}

lh_signer *lh_signer_load(const char *path, const char *name, lh_error *err)
{
    unsigned char buf[crypto_sign_SECRETKEYBYTES + 1];
    lh_signer *s = NULL;
    ssize_t got = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lh_error_set(err, errno == ENOENT ? LH_EINVAL : LH_EIO,
                     "cannot open the audit signing key file '%s' (LH_AUDIT_SIGNING_KEY_FILE): %s",
                     path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lh_error_set(err, LH_EINVAL, "the audit signing key file '%s' is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        lh_error_set(err, LH_EINVAL,
                     "the audit signing key file '%s' is accessible to group or others (mode "
                     "%04o): chmod 600 it",
                     path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    got = read(fd, buf, sizeof(buf));
    if (got < 0) {
        lh_error_set(err, LH_EIO, "cannot read the audit signing key file '%s'", path);
        goto out;
    }
    if (got != crypto_sign_SEEDBYTES && got != crypto_sign_SECRETKEYBYTES) {
        lh_error_set(err, LH_EINVAL,
                     "the audit signing key file '%s' holds %lld bytes; it must hold a 32-byte "
                     "Ed25519 seed or a 64-byte libsodium secret key, raw",
                     path, (long long)st.st_size);
        goto out;
    }
    s = lh_signer_from_seed(buf, name, err);
    if (s && got == crypto_sign_SECRETKEYBYTES &&
        sodium_memcmp(buf + crypto_sign_SEEDBYTES, s->pk, crypto_sign_PUBLICKEYBYTES) != 0) {
        lh_signer_free(s);
        s = NULL;
        lh_error_set(err, LH_EINVAL,
                     "the audit signing key file '%s' is not an Ed25519 secret key: its public "
                     "half does not match its seed",
                     path);
    }
out:
    sodium_memzero(buf, sizeof(buf));
    close(fd);
    return s;
}

void lh_signer_free(lh_signer *s)
{
    if (!s)
        return;
    sodium_free(s->sk);
    free(s);
}

const char *lh_signer_name(const lh_signer *s)
{
    return s->name;
}

const unsigned char *lh_signer_public_key(const lh_signer *s)
{
    return s->pk;
}

char *lh_signer_vkey(const lh_signer *s)
{
    unsigned char raw[1 + crypto_sign_PUBLICKEYBYTES];
    char hex[9];
    raw[0] = ALG_ED25519;
    memcpy(raw + 1, s->pk, crypto_sign_PUBLICKEYBYTES);
    sodium_bin2hex(hex, sizeof(hex), s->key_id, 4);
    char *b64 = lh_b64_encode(raw, sizeof(raw));
    char *out = lh_xasprintf("%s+%s+%s", s->name, hex, b64);
    free(b64);
    return out;
}

void lh_signer_sign(const lh_signer *s, const void *msg, size_t len, unsigned char sig[64])
{
    crypto_sign_detached(sig, NULL, msg, len, s->sk);
}

/* ---------------------------------------------------------------- notes */

char *lh_checkpoint_sign(const lh_signer *s, uint64_t size,
                         const unsigned char root[LH_MERKLE_HASH])
{
    char *root64 = lh_b64_encode(root, LH_MERKLE_HASH);
    char *body = lh_xasprintf("%s\n%llu\n%s\n", s->name, (unsigned long long)size, root64);
    unsigned char sig[4 + crypto_sign_BYTES];
    memcpy(sig, s->key_id, 4);
    lh_signer_sign(s, body, strlen(body), sig + 4);
    char *sig64 = lh_b64_encode(sig, sizeof(sig));
    char *note = lh_xasprintf("%s\n" EM_DASH " %s %s\n", body, s->name, sig64);
    free(root64);
    free(body);
    free(sig64);
    return note;
}

int lh_vkey_parse(const char *vkey, char **name, unsigned char pk[32], lh_error *err)
{
    *name = NULL;
    const char *p1 = vkey ? strchr(vkey, '+') : NULL;
    const char *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
    unsigned char raw[1 + 32], id[4], want[4];
    size_t n = 0, idn = 0;
    if (!p2 || p2 - p1 != 9)
        goto bad;
    char *nm = lh_xasprintf("%.*s", (int)(p1 - vkey), vkey);
    char hex[9];
    memcpy(hex, p1 + 1, 8);
    hex[8] = '\0';
    /* a trailing newline (a key saved with echo) is not part of the key */
    char *b64 = lh_xstrdup(p2 + 1);
    size_t bl = strlen(b64);
    while (bl && (b64[bl - 1] == '\n' || b64[bl - 1] == '\r'))
        b64[--bl] = '\0';
    bool ok = name_ok(nm) && sodium_hex2bin(id, 4, hex, 8, NULL, &idn, NULL) == 0 && idn == 4 &&
              lh_b64_decode(b64, raw, sizeof(raw), &n) == 0 && n == sizeof(raw) &&
              raw[0] == ALG_ED25519;
    free(b64);
    if (ok) {
        lh_signer_key_id(nm, raw + 1, want);
        ok = memcmp(want, id, 4) == 0;
    }
    if (!ok) {
        free(nm);
        goto bad;
    }
    memcpy(pk, raw + 1, 32);
    *name = nm;
    return 0;
bad:
    return lh_error_set(err, LH_EINVAL,
                        "not an Ed25519 verifier key '<name>+<key id hex>+<base64(0x01 ‖ public "
                        "key)>' whose key id matches (as GET /audit/pubkey gives it)");
}

int lh_note_verify(const char *note, const char *name, const unsigned char pk[32], size_t *text_len,
                   lh_error *err)
{
    /* As Go's sumdb/note Open: the signatures follow the LAST blank line; every signature
     * line must be well formed; the first line of this (name, key id) decides. */
    const char *blank = NULL;
    for (const char *p = note ? strstr(note, "\n\n") : NULL; p; p = strstr(p + 1, "\n\n"))
        blank = p;
    if (!blank)
        return lh_error_set(err, LH_EINVAL, "not a signed note (no blank line)");
    size_t body_len = (size_t)(blank - note) + 1;
    if (!lh_utf8_valid(note, body_len))
        return lh_error_set(err, LH_EINVAL, "the note's text is not UTF-8");
    for (size_t i = 0; i < body_len; i++)
        if ((unsigned char)note[i] < 0x20 && note[i] != '\n')
            return lh_error_set(err, LH_EINVAL, "the note's text holds a control character");
    unsigned char want_id[4];
    lh_signer_key_id(name, pk, want_id);
    const size_t pre = strlen(EM_DASH " ");
    int lines = 0, verdict = 0; /* no line of this key yet; 1: it verified; -1: it failed */
    for (const char *line = blank + 2; *line; lines++) {
        const char *nl = strchr(line, '\n');
        if (!nl || lines >= 100)
            return lh_error_set(err, LH_EINVAL, "the note's signature lines are malformed");
        size_t ll = (size_t)(nl - line);
        char *sl = lh_xasprintf("%.*s", (int)ll, line);
        const char *sp = ll > pre ? strrchr(sl, ' ') : NULL;
        unsigned char sig[4 + 256];
        size_t sn = 0;
        bool well_formed = sp && strncmp(sl, EM_DASH " ", pre) == 0 && (size_t)(sp - sl) > pre &&
                           lh_b64_decode(sp + 1, sig, sizeof(sig), &sn) == 0 && sn > 4;
        bool mine = well_formed && (size_t)(sp - sl) - pre == strlen(name) &&
                    strncmp(sl + pre, name, strlen(name)) == 0 && memcmp(sig, want_id, 4) == 0;
        free(sl);
        if (!well_formed)
            return lh_error_set(err, LH_EINVAL, "the note's signature lines are malformed");
        if (mine && verdict == 0) {
            bool ok = sn == 4 + crypto_sign_BYTES &&
                      crypto_sign_verify_detached(sig + 4, (const unsigned char *)note, body_len,
                                                  pk) == 0;
            verdict = ok ? 1 : -1;
        }
        line = nl + 1;
    }
    if (verdict < 0)
        return lh_error_set(err, LH_EINVAL,
                            "the signature of '%s' does not verify with this public key", name);
    if (verdict == 0)
        return lh_error_set(err, LH_EINVAL, "the note has no signature of '%s' with this key id",
                            name);
    *text_len = body_len;
    return 0;
}

int lh_checkpoint_verify(const char *note, const char *name, const unsigned char pk[32],
                         uint64_t *size, unsigned char root[LH_MERKLE_HASH], lh_error *err)
{
    size_t body_len = 0;
    int rc = lh_note_verify(note, name, pk, &body_len, err);
    if (rc)
        return rc;
    /* body: origin, size, root (and optional extension lines) */
    char *body = lh_xasprintf("%.*s", (int)body_len, note);
    char *l1 = body, *l2 = strchr(l1, '\n');
    char *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    char *l4 = l3 ? strchr(l3 + 1, '\n') : NULL;
    if (!l2 || !l3 || !l4) {
        rc = lh_error_set(err, LH_EINVAL, "the checkpoint body needs origin, size and root lines");
        goto out;
    }
    *l2 = *l3 = *l4 = '\0';
    char *endp = NULL;
    errno = 0;
    unsigned long long sz = strtoull(l2 + 1, &endp, 10);
    size_t rn = 0;
    if (!*(l2 + 1) || *endp || errno || (l2[1] == '0' && l2[2]) || l2[1] == '-' || l2[1] == '+' ||
        l2[1] == ' ' || lh_b64_decode(l3 + 1, root, LH_MERKLE_HASH, &rn) != 0 ||
        rn != LH_MERKLE_HASH) {
        rc = lh_error_set(err, LH_EINVAL, "the checkpoint's size or root hash is malformed");
        goto out;
    }
    if (strcmp(l1, name) != 0) {
        rc = lh_error_set(err, LH_EINVAL, "the checkpoint's origin '%s' is not the key's name '%s'",
                          l1, name);
        goto out;
    }
    *size = sz;
out:
    free(body);
    return rc;
}
