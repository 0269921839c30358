/* A small persistent thread pool. Workers spin briefly on a generation counter before
 * sleeping on a condition variable, so back-to-back ops (hundreds per token) start fast while
 * an idle pool costs nothing. */
#define _GNU_SOURCE
#include "kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { SPIN_ITERATIONS = 200000 };

struct uniecg_thread_pool {
    int32_t n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    /* (generation << 32) | next unclaimed index of the current job. Indices are claimed, not
     * assigned: whoever is running takes the next one, so the caller does the work of a worker
     * that has not woken up (another process holds its core) instead of waiting for it. */
    atomic_uint_fast64_t state;
    atomic_int done; /* indices of the current job finished */
    atomic_bool stop;
    uniecg_parallel_fn fn;
    void *ctx;
    struct worker { struct uniecg_thread_pool *pool; int32_t index; } *workers;
};

/* Runs indices of the current job until none is left; false if there was nothing to claim. */
static bool run_claimed(struct uniecg_thread_pool *pool) {
    uint64_t state = atomic_load_explicit(&pool->state, memory_order_acquire);
    bool ran = false;
    for (;;) {
        uint32_t next = (uint32_t)state;
        if ((int32_t)next >= pool->n_threads) return ran;
        /* success means the job is still open (its caller waits for this index), so fn and ctx
         * are the ones published with `state` */
        if (!atomic_compare_exchange_weak_explicit(&pool->state, &state, state + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        pool->fn(pool->ctx, (int32_t)next, pool->n_threads);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        ran = true;
        state = atomic_load_explicit(&pool->state, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    struct worker *self = arg;
    struct uniecg_thread_pool *pool = self->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t now;
        int spins = 0;
        while ((now = atomic_load_explicit(&pool->state, memory_order_acquire) >> 32) == seen && spins < SPIN_ITERATIONS)
            spins++;
        if (now == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((now = atomic_load_explicit(&pool->state, memory_order_acquire) >> 32) == seen &&
                   !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = now;
        run_claimed(pool);
    }
}

int32_t uniecg_physical_cores(void) {
    /* Count distinct (physical id, core id) pairs; fall back to online CPUs. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int32_t cores = 0;
    if (f) {
        char line[256];
        int physical = 0, seen_pairs[1024][2], n_pairs = 0;
        while (fgets(line, sizeof line, f)) {
            int value;
            if (sscanf(line, "physical id : %d", &value) == 1) physical = value;
            if (sscanf(line, "core id : %d", &value) == 1) {
                bool known = false;
                for (int i = 0; i < n_pairs; i++)
                    if (seen_pairs[i][0] == physical && seen_pairs[i][1] == value) known = true;
                if (!known && n_pairs < 1024) {
                    seen_pairs[n_pairs][0] = physical;
                    seen_pairs[n_pairs][1] = value;
                    n_pairs++;
                }
            }
        }
        fclose(f);
        cores = n_pairs;
    }
    if (cores <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cores = online > 0 ? (int32_t)online : 1;
    }
    return cores;
}

uniecg_status uniecg_thread_pool_create(int32_t n_threads, uniecg_thread_pool **out, uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "thread_pool_create: NULL output");
    *out = NULL;
    if (n_threads < 0 || n_threads > 256)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "thread count %d is outside 0..256", n_threads);
    if (n_threads == 0) n_threads = uniecg_physical_cores();
    uniecg_thread_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    atomic_init(&pool->state, (uint64_t)n_threads); /* generation 0, nothing to claim */
    atomic_init(&pool->done, 0);
    atomic_init(&pool->stop, false);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->threads || !pool->workers) {
        uniecg_thread_pool_free(pool);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int32_t i = 1; i < n_threads; i++) {
        pool->workers[i] = (struct worker){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->workers[i]) != 0) {
            pool->n_threads = i; /* free joins only the started ones */
            uniecg_thread_pool_free(pool);
            return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return UNIECG_OK;
}

int32_t uniecg_thread_pool_size(const uniecg_thread_pool *pool) { return pool ? pool->n_threads : 1; }

void uniecg_thread_pool_free(uniecg_thread_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int32_t i = 1; i < pool->n_threads; i++)
        if (pool->threads && pool->threads[i]) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

void uniecg__parallel(uniecg_thread_pool *pool, uniecg_parallel_fn fn, void *ctx) {
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    /* the previous job is complete (every index done), so nobody reads fn and ctx now */
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint64_t generation = (atomic_load_explicit(&pool->state, memory_order_relaxed) >> 32) + 1;
    pthread_mutex_lock(&pool->mutex);
    atomic_store_explicit(&pool->state, generation << 32, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    run_claimed(pool);
    int spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n_threads)
        if (++spins > SPIN_ITERATIONS) sched_yield();
}
