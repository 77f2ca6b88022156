/* Decoder for the record stream of one connection (include/ppx/wire.h).
 *
 * Pure: it never touches a socket. Feed it the bytes as they arrive, in
 * chunks of any size; each complete record is validated and then applied
 * to the connection's struct proc in the proc_table. The first bad byte
 * stops the decoder for good: the caller closes the connection. Whatever
 * the process sent before the bad record stays in the table.
 *
 * Memory per connection is bounded: at most one partial record
 * (<= WIRE_MAX_RECORD, and grown only as its bytes actually arrive), and
 * per process at most WIRE_DECODE_MAX_* mappings, stacks, frames, I/O
 * sites and threads (one more closes the connection). The I/O detail beyond its
 * limits, distinct errnos or sampled stacks of one site, is dropped and
 * counted (proc_table_io_drops()); the site's exact figures stay whole:
 * calls of an errno beyond the limit remain in the site's errors, and the
 * site's figures are divided among the stacks it kept. Likewise CPU
 * samples of (stack, thread) pairs beyond WIRE_DECODE_MAX_CPU_ENTRIES are
 * kept only as a count (proc->cpu_dropped), so the CPU total stays true.
 * Threads beyond WIRE_DECODE_MAX_THREADS are not described (proc->
 * threads_full); their CPU samples are counted the same way. */
#ifndef PPX_WIRE_DECODE_H
#define PPX_WIRE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proc_table.h"

#define WIRE_DECODE_MAX_MAPPINGS 65536u
#define WIRE_DECODE_MAX_STACKS (1u << 22)
#define WIRE_DECODE_MAX_FRAMES (1u << 26) /* program counters held per process: 512 MiB */
#define WIRE_DECODE_MAX_IO_SITES 65536u
#define WIRE_DECODE_MAX_IO_ERRNOS 64u         /* distinct errnos named per site */
#define WIRE_DECODE_MAX_IO_SITE_STACKS 4096u  /* distinct sampled stacks per site */
#define WIRE_DECODE_MAX_IO_STACK_ENTRIES (1u << 20) /* (site, stack) pairs per process */
#define WIRE_DECODE_MAX_THREADS (1u << 20)     /* threads described per process */
#define WIRE_DECODE_MAX_CPU_ENTRIES (1u << 21) /* (stack, thread) pairs per process */

struct wire_decoder;

/* peer_pid (from SO_PEERCRED, 0 when unknown) names the connection in
 * messages until its HELLO says which process it is. NULL when out of
 * memory. */
struct wire_decoder *wire_decoder_new(struct proc_table *t, uint32_t peer_pid);

/* The order in which the connection was made (accepted), 1 and up: a
 * HELLO from a connection older than the one that last said HELLO for the
 * same process (both streams were read out of order, the old one last) is
 * ignored, and its connection closed, rather than let the older state
 * replace the newer. Without it (0: a spool file) every HELLO is taken. */
void wire_decoder_set_order(struct wire_decoder *d, uint64_t order);

/* Consumes len bytes. 0 while the stream is valid; -1 once it is not (and
 * for every later call): see wire_decoder_error(). */
int wire_decoder_feed(struct wire_decoder *d, const void *bytes, size_t len);

/* The peer closed the stream. 0 for a clean end (at a record boundary), -1
 * when it ended inside a record or the stream had failed before. */
int wire_decoder_end(struct wire_decoder *d);

/* The error as one line for stderr, without a newline, such as
 * "ppx: pid 1234: bad STACK record: depth 0"; "" when there is none or when
 * it need not be shown again (a process whose streams break again and
 * again is said once). */
const char *wire_decoder_error(const struct wire_decoder *d);

/* True when the stream failed: bad data, or cut inside a record. */
bool wire_decoder_failed(const struct wire_decoder *d);

/* True when the stream failed on bad data (not cut short, not still
 * valid): the connection must go, the process may reconnect afresh. */
bool wire_decoder_broke_protocol(const struct wire_decoder *d);

/* The process this connection feeds: NULL before a valid HELLO. */
struct proc *wire_decoder_proc(const struct wire_decoder *d);

/* The process whose stream ends with this decoder: its proc, unless a
 * newer connection feeds it now or has fed it since (after GOODBYE or a
 * bad record the decoder no longer owns it, but no other does either: its
 * stream ended here all the same). NULL before a HELLO. */
struct proc *wire_decoder_ended_proc(const struct wire_decoder *d);

/* True once GOODBYE was received. */
bool wire_decoder_said_goodbye(const struct wire_decoder *d);

/* Frees the decoder; the process stays in the table, marked disconnected
 * if this connection was the one feeding it. */
void wire_decoder_free(struct wire_decoder *d);

#endif
