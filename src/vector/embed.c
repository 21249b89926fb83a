/*
 * embed.c: the embedder interface (vector_internal.h) and its dispatch to the backends:
 * the built-in `hash` function (embed_hash.c) and the `ollama` / `openai` HTTP clients
 * (embed_http.c). docs/VECTORS.md §Embedders.
 *
 * An lh_embedder is immutable once open (its kind, model and dimension never change), so
 * any number of threads may embed through it at once; the HTTP backend keeps no shared
 * mutable state either (one curl handle per call).
 */
#include "vector/vector_internal.h"

#include <stdlib.h>
#include <string.h>

#define LH_HASH_DIM_DEFAULT 384
#define LH_HASH_DIM_MIN 8
#define LH_HASH_DIM_MAX 4096
/* The hash embedder polls the job between groups of this many texts. */
#define LH_HASH_CANCEL_EVERY 256

struct lh_embedder {
    char *kind;  /* "hash" | "ollama" | "openai" */
    char *model; /* "" for hash */
    int dim;
    lh_embed_http *http; /* NULL for hash */
};

lh_embedder *lh_embedder_open(const lh_config *cfg, const lh_embedder_spec *spec, lh_error *err)
{
    lh_embedder *e = lh_xcalloc(1, sizeof(*e));
    const char *kind = spec->kind && *spec->kind ? spec->kind : "hash";
    if (strcmp(kind, "hash") == 0) {
        int dim = spec->dim ? spec->dim : LH_HASH_DIM_DEFAULT;
        if (dim < LH_HASH_DIM_MIN || dim > LH_HASH_DIM_MAX) {
            lh_error_set(err, LH_EINVAL, "dim must be from %d to %d for the hash embedder (got %d)",
                         LH_HASH_DIM_MIN, LH_HASH_DIM_MAX, spec->dim);
            goto fail;
        }
        if (spec->model && *spec->model) {
            lh_error_set(err, LH_EINVAL, "the hash embedder takes no model (got '%s')",
                         spec->model);
            goto fail;
        }
        e->kind = lh_xstrdup("hash");
        e->model = lh_xstrdup("");
        e->dim = dim;
        return e;
    }
    if (strcmp(kind, "ollama") != 0 && strcmp(kind, "openai") != 0) {
        lh_error_set(err, LH_EINVAL, "unknown embedder '%s' (embedders: hash, ollama, openai)",
                     kind);
        goto fail;
    }
    if (!spec->model || !*spec->model) {
        lh_error_set(err, LH_EINVAL, "the %s embedder needs a model", kind);
        goto fail;
    }
    if (spec->dim < 0 || spec->dim > LH_EMBED_DIM_MAX) {
        lh_error_set(err, LH_EINVAL, "dim must be from 1 to %d (or 0: ask the server)",
                     LH_EMBED_DIM_MAX);
        goto fail;
    }
    e->kind = lh_xstrdup(kind);
    e->model = lh_xstrdup(spec->model);
    if (!(e->http = lh_embed_http_open(cfg, kind, spec->model, err)))
        goto fail;
    e->dim = spec->dim;
    if (!e->dim && lh_embed_http_probe_dim(e->http, &e->dim, err) != 0)
        goto fail;
    return e;
fail:
    lh_embedder_free(e);
    return NULL;
}

void lh_embedder_free(lh_embedder *e)
{
    if (!e)
        return;
    lh_embed_http_free(e->http);
    free(e->kind);
    free(e->model);
    free(e);
}

const char *lh_embedder_kind(const lh_embedder *e)
{
    return e->kind;
}

const char *lh_embedder_model(const lh_embedder *e)
{
    return e->model;
}

int lh_embedder_dim(const lh_embedder *e)
{
    return e->dim;
}

int lh_embedder_embed(lh_embedder *e, const char *const *texts, size_t n, float *out, lh_job *job,
                      lh_error *err)
{
    if (e->http)
        return lh_embed_http_embed(e->http, texts, n, e->dim, out, job, err);
    for (size_t i = 0; i < n; i++) {
        if (i % LH_HASH_CANCEL_EVERY == 0 && lh_job_cancelled(job))
            return lh_error_set(err, LH_ECANCELLED, "embedding was cancelled");
        lh_hash_embed(texts[i], strlen(texts[i]), e->dim, out + i * (size_t)e->dim);
    }
    return 0;
}

int lh_embedder_load(lh_embedder *e, bool load, lh_error *err)
{
    if (!e->http)
        return 0;
    return lh_embed_http_load(e->http, load, err);
}
