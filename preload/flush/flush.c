/* One flush: connect if need be (a new connection starts with HELLO and
 * the full state), then everything that changed since the last flush on
 * this connection, in the order the collector needs it: new mappings, the
 * heap deltas (heap/), the threads (cpu/thread_registry.c), the I/O audit
 * (io/), the block and mutex profiles (lock/), the CPU profile (cpu/). The exit and exec flushes
 * end with GOODBYE, or go to a spool file when no collector is reachable. */
#include "flush.h"

#include <unistd.h>

#define FINAL_FLUSH_BUDGET_NS (5ull * 1000000000ull)

void ppx_flush_disconnect(void)
{
    ppx_stream_close();
    ppx_commands_reset();
    ppx_cpu_set_rate(0); /* whoever asked for CPU samples is gone */
}

/* A collector we may trust took the connection: HELLO first. */
static bool connect_collector(void)
{
    if (!ppx_stream_connect())
        return false;
    ppx_commands_reset();
    /* a new collector has asked for no CPU samples (yet) */
    ppx_cpu_set_rate(0);
    return ppx_stream_send_hello();
}

/* The program read or wrote our connection's descriptor since it was
 * made: its bytes may sit in the middle of the stream (the collector then
 * closes it as corrupt), or it took the collector's commands. Closed, so
 * that the next connection starts clean with a HELLO and the whole state,
 * and its figures are right again, rather than trusting what the
 * collector may or may not have decoded. Nothing said here: the collector
 * says what it saw, and a program that writes into every descriptor is
 * one whose stderr may not be a terminal either. */
static void drop_if_program_touched(void)
{
    if (ppx_stream_program_touched_it())
        ppx_flush_disconnect();
}

/* Everything that changed since the last flush on this connection (all
 * of it on a fresh one), written out. */
static bool send_state(struct ppx_encoder *enc, bool fresh)
{
    /* Stacks interned after this point may use code loaded after the scan
     * below; they wait for the next flush, so a MAPPING always precedes the
     * STACKs that need it. */
    uint32_t n_stacks = ppx_stacks_count();
    struct ppx_io_snapshot io;
    ppx_io_snapshot(&io); /* sites likewise: their caller may be new code */
    uint64_t generation = ppx_stream_generation();
    bool ok = ppx_mappings_send(enc, generation, fresh);
    if (ok)
        ok = ppx_heap_send(enc, n_stacks, fresh);
    if (ok)
        ok = ppx_threads_send(enc, generation, n_stacks); /* before the CPU samples naming them */
    if (ok)
        ok = ppx_io_send(enc, generation, n_stacks, &io);
    if (ok)
        ok = ppx_contention_send(enc, generation, n_stacks);
    if (ok)
        ok = ppx_cpu_send(enc, generation); /* after the THREAD records its samples name */
    return ok && ppx_heap_send_pending(enc) && ppx_encoder_flush(enc);
}

void ppx_flush_locked(void)
{
    PPX_CHECK_OWNED(&ppx_stream_mu_owner);
    ppx_stream_check_locked();
    if (ppx_flush_flags.silenced || ppx_flush_flags.exec_pending)
        return;
    ppx_unwind_check_fds();
    bool fresh = false;
    if (ppx_stream_connected() && !ppx_stream_still_ours())
        ppx_stream_forget();
    drop_if_program_touched();
    /* (not once stopping: the destructor shut the reading side itself) */
    if (ppx_stream_connected() && !ppx_flush_flags.stopping && ppx_stream_peer_closed())
        ppx_flush_disconnect();
    if (!ppx_stream_connected()) {
        if (!connect_collector()) {
            ppx_flush_disconnect();
            return;
        }
        fresh = true;
    }
    if (!send_state(ppx_stream_encoder(), fresh)) {
        ppx_flush_disconnect();
        ppx_stream_encoder_reset();
    }
}

/* No collector took the final state: it goes to a spool file, as a whole
 * stream of its own (HELLO, everything, GOODBYE); with stream_mu held. */
static void spool_final_state(void)
{
    if (!ppx_stream_buffers_ready())
        return;
    uint64_t room = 0;
    int fd = ppx_spool_open(&room);
    if (fd < 0)
        return;
    ppx_stream_spool_begin(fd, room); /* a stream of its own: every stack and site from zero */
    struct ppx_encoder *enc = ppx_stream_encoder();
    /* Twice, as for a connection (flush_and_say_goodbye). */
    bool ok = ppx_stream_send_hello() && send_state(enc, true) && send_state(enc, false) &&
              ppx_emit(enc, WIRE_GOODBYE, NULL, 0, NULL, 0, NULL, 0) && ppx_encoder_flush(enc);
    ppx_stream_spool_end();
    ppx_spool_close(fd, ok);
}

/* Sends everything, then GOODBYE, and closes the connection; with
 * stream_mu held. When no collector is reachable, spools it instead. */
void ppx_flush_and_say_goodbye(void)
{
    PPX_CHECK_OWNED(&ppx_stream_mu_owner);
    struct ppx_encoder *enc = ppx_stream_encoder();
    enc->deadline_ns = ppx_monotonic_ns() + FINAL_FLUSH_BUDGET_NS;
    enc->final = true;
    /* Twice: stacks interned during the first round (other threads run on)
     * wait for a round whose mapping scan follows them. */
    ppx_flush_locked();
    if (ppx_stream_connected())
        ppx_flush_locked();
    if (ppx_stream_connected()) {
        if (ppx_emit(enc, WIRE_GOODBYE, NULL, 0, NULL, 0, NULL, 0))
            ppx_encoder_flush(enc);
        ppx_flush_disconnect();
    } else if (!ppx_flush_flags.silenced &&
               (ppx_stacks_any_counted() || ppx_io_any_counted() || ppx_contention_any())) {
        spool_final_state();
    }
    enc->final = false;
    enc->deadline_ns = 0;
}
