/*
 * hnsw_insert.cpp: links new vectors into a FAISS HNSW graph, in place of
 * IndexHNSW::add (ann_internal.hpp).
 *
 * Why our own: FAISS 1.7.3 scores a node's neighbours one at a time as its walk meets
 * them, and for 768-dim vectors every score is a 3 KiB read from memory the caches no
 * longer hold: a profile of a 100k x 768 build (M=16, efConstruction=200) spent its time
 * stalled on those loads (230 s on two cores). Here a walk first gathers a node's unvisited
 * neighbours, then scores them four at a time (dot4) while the next four are prefetched,
 * so several misses are in flight at once instead of one.
 *
 * The graph is FAISS's own (faiss::HNSW: levels, offsets, neighbours, entry point), so the
 * file format, searches and FAISS's reader are unchanged. What is the same as FAISS:
 * levels drawn by HNSW::prepare_level_tab from the structure's own generator; points
 * inserted level by level, highest first, in a shuffled order within a level; a beam of
 * efConstruction candidates per level; the same neighbour-selection heuristic (a candidate
 * is kept only if no kept neighbour is closer to it than the new point is) both for the
 * new point's list and when a full list must make room for a back link; per-node locks
 * around list updates. Making room is where most of a build's scores went (the heuristic
 * over a full list is a list's worth of scores squared, and each new point makes up to 32
 * full lists choose again): for a level-0 list the heuristic itself produced, the same
 * choice is made from the newcomer's scores alone (link_closed; the unit test builds a
 * graph both ways and compares them byte for byte). What differs: each level's beam
 * starts from the best point the level above found (the HNSW paper's rule; FAISS
 * restarts every level from the greedy descent's result), and neighbour ids are read and
 * written with relaxed atomics (FAISS reads lists other threads are rewriting with plain
 * loads).
 *
 * Scores are inner products (higher is closer): the structures are METRIC_INNER_PRODUCT.
 */
#include "vector/ann_internal.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <queue>
#include <utility>
#include <vector>

#include <omp.h>
#include <xmmintrin.h>

namespace lh_faiss
{
namespace
{

std::atomic<bool> reselect_all{false};

using idx_t = faiss::Index::idx_t;
using node_t = faiss::HNSW::storage_idx_t; /* int32_t */

struct scored {
    float s; /* inner product with the point being inserted */
    node_t id;
};
/* orders a heap so that the least similar is on top */
struct worse_on_top {
    bool operator()(const scored &a, const scored &b) const
    {
        return a.s > b.s;
    }
};
/* orders a heap so that the most similar is on top */
struct best_on_top {
    bool operator()(const scored &a, const scored &b) const
    {
        return a.s < b.s;
    }
};

inline node_t load_id(const node_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

inline void store_id(node_t *p, node_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Marks of the nodes one walk has seen; a new stamp per walk, cleared when it wraps. */
struct visited {
    std::vector<uint8_t> mark;
    uint8_t stamp = 1;
    explicit visited(size_t n) : mark(n, 0) {}
    bool first_visit(node_t i)
    {
        if (mark[(size_t)i] == stamp)
            return false;
        mark[(size_t)i] = stamp;
        return true;
    }
    void next_walk()
    {
        if (++stamp == 0) {
            std::fill(mark.begin(), mark.end(), 0);
            stamp = 1;
        }
    }
};

struct builder {
    faiss::HNSW &g;
    const float *xb; /* the storage's vectors, ntotal x d */
    size_t d;
    /* When not empty: every stored vector as int8 codes (ntotal x d) with a scale each,
       what walks score against (quantize). */
    std::vector<int8_t> codes;
    std::vector<float> scale;
    std::vector<omp_lock_t> locks;
    std::mutex top_lock; /* entry_point and max_level */
    /* Level 0, where nearly all the linking happens: closed[i] says node i's list is the
       heuristic's own output (each member kept against the members before it), ordered
       most similar first, with each member's score against i in sims[i * cap0 + k]. A back
       link into such a list when it is full needs the newcomer's scores alone
       (link_closed). Both are guarded by the node's lock. sims is 4 bytes per level-0
       slot (128 MB for a million vectors at M=16), left uninitialised: it is read only
       where closed says it was written, so a small append to a large graph touches the
       pages of the lists it changes, not all of them. */
    size_t cap0;
    std::vector<uint8_t> closed;
    std::unique_ptr<float[]> sims;
    bool incremental; /* off: every full list reruns the heuristic (hnsw_reselect_all) */

    builder(faiss::HNSW &g_, const float *xb_, size_t d_, size_t ntotal, bool incremental_)
        : g(g_), xb(xb_), d(d_), locks(ntotal), cap0((size_t)g_.nb_neighbors(0)), closed(ntotal, 0),
          sims(new float[ntotal * cap0]), incremental(incremental_)
    {
        for (omp_lock_t &l : locks)
            omp_init_lock(&l);
    }
    ~builder()
    {
        for (omp_lock_t &l : locks)
            omp_destroy_lock(&l);
    }
    builder(const builder &) = delete;
    builder &operator=(const builder &) = delete;

    const float *vec(node_t i) const
    {
        return xb + (size_t)i * d;
    }

    const int8_t *code(node_t i) const
    {
        return codes.data() + (size_t)i * d;
    }

    /* Codes of the n stored vectors: each scaled by its largest magnitude to [-127, 127]. */
    void quantize(size_t n)
    {
        codes.resize(n * d);
        scale.resize(n);
#pragma omp parallel for schedule(static)
        for (long i = 0; i < (long)n; i++) {
            const float *x = vec((node_t)i);
            float m = 0;
            for (size_t j = 0; j < d; j++)
                m = std::max(m, std::fabs(x[j]));
            scale[(size_t)i] = m / 127.0f;
            float inv = m > 0 ? 127.0f / m : 0.0f;
            int8_t *c = codes.data() + (size_t)i * d;
            for (size_t j = 0; j < d; j++)
                c[j] = (int8_t)std::max(-127L, std::min(127L, lrintf(x[j] * inv)));
        }
    }

    void prefetch(node_t i) const
    {
        const char *p = codes.empty() ? reinterpret_cast<const char *>(vec(i))
                                      : reinterpret_cast<const char *>(code(i));
        size_t bytes = codes.empty() ? d * sizeof(float) : d;
        for (size_t off = 0; off < bytes; off += 64)
            _mm_prefetch(p + off, _MM_HINT_T0);
    }

    /* out[k] = the score of stored vector q against stored vector ids[k], k < 4. */
    void score4(node_t q, const node_t *ids, float *out) const
    {
        if (codes.empty()) {
            const float *v[4] = {vec(ids[0]), vec(ids[1]), vec(ids[2]), vec(ids[3])};
            dot4(vec(q), v, d, out);
            return;
        }
        const int8_t *v[4] = {code(ids[0]), code(ids[1]), code(ids[2]), code(ids[3])};
        int32_t raw[4];
        dot4_i8(code(q), v, d, raw);
        float sq = scale[(size_t)q];
        for (int k = 0; k < 4; k++) /* scales multiplied first: score(a, b) == score(b, a) */
            out[k] = (float)raw[k] * (sq * scale[(size_t)ids[k]]);
    }

    /* s[i] = the score of stored vector q against ids[i], i < n: all prefetched first (a
       neighbour list's worth of codes fits in L1), then groups of four, the last padded
       with its own last id. */
    void score(node_t q, const node_t *ids, size_t n, float *s) const
    {
        size_t ahead = codes.empty() ? 8 : n; /* float vectors: two groups ahead */
        for (size_t i = 0; i < n && i < ahead; i++)
            prefetch(ids[i]);
        for (size_t i = 0; i < n; i += 4) {
            for (size_t j = std::max(i + 4, ahead); j < n && j < i + 8; j++)
                prefetch(ids[j]);
            node_t group[4];
            float out[4];
            for (size_t k = 0; k < 4; k++)
                group[k] = ids[std::min(i + k, n - 1)];
            score4(q, group, out);
            for (size_t k = 0; k < 4 && i + k < n; k++)
                s[i + k] = out[k];
        }
    }

    /* The neighbours of node at level, up to the first empty slot; returns how many. */
    size_t neighbours(node_t node, int level, node_t *out) const
    {
        size_t begin, end;
        g.neighbor_range(node, level, &begin, &end);
        size_t n = 0;
        for (size_t i = begin; i < end; i++) {
            node_t v = load_id(&g.neighbors[i]);
            if (v < 0)
                break;
            out[n++] = v;
        }
        return n;
    }

    size_t max_degree() const
    {
        return (size_t)g.nb_neighbors(0); /* level 0 holds the most: 2M */
    }

    /* Greedy descent on one upper level: moves `best` to its most similar neighbour
       while that improves. */
    void greedy(node_t q, int level, scored &best) const
    {
        std::vector<node_t> ids(max_degree());
        std::vector<float> s(max_degree());
        for (;;) {
            node_t from = best.id;
            size_t n = neighbours(from, level, ids.data());
            score(q, ids.data(), n, s.data());
            for (size_t i = 0; i < n; i++) {
                if (s[i] > best.s)
                    best = {s[i], ids[i]};
            }
            if (best.id == from)
                return;
        }
    }

    /* The beam search of one level: up to efConstruction most similar points reachable
       from `entry`, most similar first. */
    std::vector<scored> beam(node_t q, int level, scored entry, visited &vt) const
    {
        size_t ef = (size_t)std::max(1, g.efConstruction);
        std::priority_queue<scored, std::vector<scored>, worse_on_top> results;
        std::priority_queue<scored, std::vector<scored>, best_on_top> frontier;
        std::vector<node_t> ids(max_degree()), fresh(max_degree());
        std::vector<float> s(max_degree());
        results.push(entry);
        frontier.push(entry);
        vt.first_visit(entry.id);
        while (!frontier.empty()) {
            scored c = frontier.top();
            if (c.s < results.top().s)
                break;
            frontier.pop();
            size_t n = neighbours(c.id, level, ids.data()), m = 0;
            for (size_t i = 0; i < n; i++) {
                if (vt.first_visit(ids[i]))
                    fresh[m++] = ids[i];
            }
            score(q, fresh.data(), m, s.data());
            for (size_t i = 0; i < m; i++) {
                if (results.size() < ef || s[i] > results.top().s) {
                    results.push({s[i], fresh[i]});
                    frontier.push({s[i], fresh[i]});
                    if (results.size() > ef)
                        results.pop();
                }
            }
        }
        vt.next_walk();
        std::vector<scored> out(results.size());
        for (size_t i = out.size(); i-- > 0;) {
            out[i] = results.top();
            results.pop();
        }
        return out;
    }

    /* The neighbour-selection heuristic over candidates sorted most similar first: keeps
       a candidate unless a kept one is more similar to it than the point is, up to
       max_size. Fewer candidates than max_size are all kept, as FAISS does. */
    std::vector<scored> select(const std::vector<scored> &cand, size_t max_size) const
    {
        if (cand.size() < max_size)
            return cand;
        std::vector<scored> kept;
        for (const scored &c : cand) {
            if (!dominated(c, kept.data(), kept.size())) {
                kept.push_back(c);
                if (kept.size() >= max_size)
                    break;
            }
        }
        return kept;
    }

    /* Whether a kept neighbour is more similar to c than the point is; stops at the
       first group of four that has one (the kept vectors were just scored: cached). */
    bool dominated(const scored &c, const scored *kept, size_t n) const
    {
        for (size_t i = 0; i < n; i += 4) {
            node_t group[4];
            float s[4];
            for (size_t k = 0; k < 4; k++)
                group[k] = kept[std::min(i + k, n - 1)].id;
            score4(c.id, group, s);
            if (s[0] > c.s || s[1] > c.s || s[2] > c.s || s[3] > c.s)
                return true;
        }
        return false;
    }

    /* Adds dest to src's list at level; a full list keeps the heuristic's choice among
       its members and dest. Caller holds src's lock. */
    void link(node_t src, node_t dest, int level)
    {
        size_t begin, end;
        g.neighbor_range(src, level, &begin, &end);
        node_t *list = &g.neighbors[begin];
        size_t cap = end - begin;
        if (load_id(&list[cap - 1]) < 0) {
            size_t i = cap;
            while (i > 0 && load_id(&list[i - 1]) < 0)
                i--;
            store_id(&list[i], dest);
            if (level == 0)
                closed[(size_t)src] = 0; /* appended where it falls, as FAISS does */
            return;
        }
        if (level == 0 && incremental && closed[(size_t)src]) {
            link_closed(src, dest, list);
            return;
        }
        std::vector<node_t> ids(cap + 1);
        for (size_t i = 0; i < cap; i++)
            ids[i] = load_id(&list[i]);
        ids[cap] = dest;
        std::vector<float> s(cap + 1);
        score(src, ids.data(), ids.size(), s.data());
        std::vector<scored> cand(cap + 1);
        for (size_t i = 0; i <= cap; i++)
            cand[i] = {s[i], ids[i]};
        std::stable_sort(cand.begin(), cand.end(),
                         [](const scored &a, const scored &b) { return a.s > b.s; });
        std::vector<scored> kept = select(cand, cap);
        store_list(src, level, list, cap, kept.data(), kept.size());
    }

    /* Writes kept (most similar first) as src's list at level, the rest empty; at level 0
       the list is then the heuristic's output: closed, its scores kept. */
    void store_list(node_t src, int level, node_t *list, size_t cap, const scored *kept, size_t n)
    {
        size_t i = 0;
        for (; i < n; i++)
            store_id(&list[i], kept[i].id);
        for (; i < cap; i++)
            store_id(&list[i], -1);
        if (level == 0) {
            float *sim = &sims[(size_t)src * cap0];
            for (i = 0; i < n; i++)
                sim[i] = kept[i].s;
            closed[(size_t)src] = 1;
        }
    }

    /* link's full-list case at level 0 for a closed list, with the result the heuristic
       over all members and dest would give, at a list's worth of scores instead of a
       list's worth squared. Sorted most similar first, dest falls at position j (after
       members that score the same, as the stable sort puts it). The members before j are
       kept as before; dest is kept unless one of them dominates it; each member after j
       was kept against all the others before it (closed), so it stays unless dest is kept
       and dominates it; then the first cap of these are the list. When dest is not kept
       (or falls past the end) the heuristic keeps every member: nothing changes. */
    void link_closed(node_t src, node_t dest, node_t *list)
    {
        size_t cap = cap0;
        const float *sim = &sims[(size_t)src * cap];
        scored c;
        c.id = dest;
        score(src, &dest, 1, &c.s);
        std::vector<scored> members(cap);
        size_t j = cap;
        for (size_t i = 0; i < cap; i++) {
            members[i] = {sim[i], load_id(&list[i])};
            if (j == cap && sim[i] < c.s)
                j = i;
        }
        if (j == cap || dominated(c, members.data(), j))
            return;
        std::vector<node_t> after(cap - j);
        std::vector<float> t(cap - j);
        for (size_t i = j; i < cap; i++)
            after[i - j] = members[i].id;
        score(dest, after.data(), after.size(), t.data());
        std::vector<scored> kept(members.begin(), members.begin() + (long)j);
        kept.push_back(c);
        for (size_t i = j; i < cap && kept.size() < cap; i++) {
            if (!(t[i - j] > members[i].s))
                kept.push_back(members[i]);
        }
        store_list(src, 0, list, cap, kept.data(), kept.size());
    }

    void insert(node_t pt, int pt_level, visited &vt)
    {
        node_t entry;
        int top;
        {
            std::lock_guard<std::mutex> hold(top_lock);
            entry = g.entry_point;
            top = g.max_level;
            if (entry < 0) {
                g.entry_point = pt;
                g.max_level = pt_level;
                return;
            }
        }
        omp_set_lock(&locks[(size_t)pt]);
        scored best = {0, entry};
        score(pt, &entry, 1, &best.s);
        int level = top;
        for (; level > pt_level; level--)
            greedy(pt, level, best);
        for (; level >= 0; level--) {
            std::vector<scored> cand = beam(pt, level, best, vt);
            best = cand.front();
            std::vector<scored> kept = select(cand, (size_t)g.nb_neighbors(level));
            size_t begin, end;
            g.neighbor_range(pt, level, &begin, &end);
            node_t *list = &g.neighbors[begin];
            if (level == 0 && cand.size() >= cap0 && load_id(&list[0]) < 0) {
                /* the heuristic's output into an empty list: closed from the start (a
                   list another thread linked into already is appended to, as FAISS does) */
                store_list(pt, 0, list, end - begin, kept.data(), kept.size());
            } else {
                for (const scored &k : kept)
                    link(pt, k.id, level);
            }
            /* Back links take the neighbours' locks; never hold two at once. */
            omp_unset_lock(&locks[(size_t)pt]);
            for (const scored &k : kept) {
                omp_set_lock(&locks[(size_t)k.id]);
                link(k.id, pt, level);
                omp_unset_lock(&locks[(size_t)k.id]);
            }
            omp_set_lock(&locks[(size_t)pt]);
        }
        omp_unset_lock(&locks[(size_t)pt]);
        if (pt_level > top) {
            std::lock_guard<std::mutex> hold(top_lock);
            if (pt_level > g.max_level) {
                g.max_level = pt_level;
                g.entry_point = pt;
            }
        }
    }
};

} // namespace

void hnsw_reselect_all(bool on)
{
    reselect_all.store(on, std::memory_order_relaxed);
}

void hnsw_insert(faiss::IndexHNSWFlat &h, idx_t n, const float *x)
{
    if (n <= 0)
        return;
    idx_t n0 = h.ntotal;
    h.storage->add(n, x);
    h.ntotal = h.storage->ntotal;
    faiss::HNSW &g = h.hnsw;
    g.prepare_level_tab((size_t)n, false);

    /* New points grouped by level, highest first; shuffled within a level so the input's
       order does not shape the graph (a fixed seed: the same input builds the same
       levels and order). */
    std::vector<std::pair<int, node_t>> order((size_t)n);
    for (idx_t i = 0; i < n; i++)
        order[(size_t)i] = {g.levels[(size_t)(n0 + i)] - 1, (node_t)(n0 + i)};
    std::stable_sort(order.begin(), order.end(),
                     [](const std::pair<int, node_t> &a, const std::pair<int, node_t> &b) {
                         return a.first > b.first;
                     });
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j < order.size() && order[j].first == order[i].first)
            j++;
        partial_shuffle(order.data() + i, j - i, j - i, 0x9e3779b97f4a7c15ULL ^ (n0 + i));
        i = j;
    }

    const float *xb = static_cast<const faiss::IndexFlat *>(h.storage)->get_xb();
    builder b(g, xb, (size_t)h.d, (size_t)h.ntotal, !reselect_all.load(std::memory_order_relaxed));
    /* A batch that is a good part of the graph (a build) walks over int8 codes: a quarter
       of the memory traffic, and the graph comes out as good (bench/vectors compares it
       with FAISS's own). A small append scores the float vectors, as coding every stored
       vector would cost more than the walks save. */
    if ((size_t)n * 8 >= (size_t)h.ntotal)
        b.quantize((size_t)h.ntotal);
    /* One level at a time, highest first, as FAISS does: the upper layers exist before
       the many points of the lower ones walk down through them. */
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j < order.size() && order[j].first == order[i].first)
            j++;
        long lo = (long)i, hi = (long)j;
#pragma omp parallel if (hi - lo > 100)
        {
            visited vt((size_t)h.ntotal);
#pragma omp for schedule(dynamic, 32)
            for (long k = lo; k < hi; k++)
                b.insert(order[(size_t)k].second, order[(size_t)k].first, vt);
        }
        i = j;
    }
}

} // namespace lh_faiss
