/* stream: what goes to the collector and how. The encoder that builds
 * records (wire.h), the connection (a trusted Unix socket) or the spool
 * file it writes to, the HELLO, STACK and MAPPING records every stream
 * needs. The recorders (heap/, io/, cpu/) encode their own records with it;
 * flush/ decides when. */
#ifndef PPX_STREAM_H
#define PPX_STREAM_H

#include "../stack/stack.h"

#pragma GCC visibility push(hidden)

/* ---- encoder.c ---- */

#define PPX_HEAP_DELTA_CAPACITY 8192u /* entries per HEAP_DELTA record */

struct ppx_encoder {
    unsigned char *out;
    size_t out_len;
    /* the HEAP_DELTA being built (heap/heap_delta.c) */
    struct wire_heap_entry *entries;
    size_t n_entries;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none */
    bool failed;
    /* the flush under way is the last one (exit, exec): every change goes
     * out then, however small (the threads' CPU times) */
    bool final;
};

/* The one encoder, used under the stream's lock (ppx_stream_lock). */
struct ppx_encoder *ppx_stream_encoder(void);
/* Appends one record (header + up to three payload parts); false when the
 * connection failed. */
bool ppx_emit(struct ppx_encoder *enc, uint32_t type, const void *a, size_t alen, const void *b,
              size_t blen, const void *c, size_t clen);
/* Writes out what is buffered; false when the connection failed. */
bool ppx_encoder_flush(struct ppx_encoder *enc);
/* Nothing pending, nothing failed: for a new stream, or after a failed one. */
void ppx_stream_encoder_reset(void);
/* The encoder's buffers, mapped on first use; false when out of memory. */
bool ppx_stream_buffers_ready(void);

/* ---- connection.c ---- */

/* The stream's state (the encoder, what was sent on this connection):
 * held by whoever flushes, and by fork's prepare handler. */
void ppx_stream_lock(void);
void ppx_stream_unlock(void);
/* PPX_CHECK that the caller holds it. */
void ppx_stream_check_locked(void);
/* Counts connections (and spool files): what was sent on an older one
 * must be sent again. 0: none yet. */
uint64_t ppx_stream_generation(void);
/* Connects if a collector we may trust is listening (not a byte sent yet:
 * the HELLO is the caller's); false if none is, or is not to be trusted. */
bool ppx_stream_connect(void);
bool ppx_stream_connected(void);
/* The connected socket's descriptor (-1: none), for poll and commands. */
int ppx_stream_socket(void);
/* The descriptor is still our socket, and this process the one that
 * connected it (not a raw clone() sharing it). */
bool ppx_stream_still_ours(void);
/* Forgets a socket the program closed or replaced (not ours to close). */
void ppx_stream_forget(void);
void ppx_stream_close(void);
/* Whether the collector closed its end. */
bool ppx_stream_peer_closed(void);
/* The exit or exec flush of a process without a collector writes to a
 * spool file (fd, with room bytes) instead, as a stream of its own. */
void ppx_stream_spool_begin(int fd, uint64_t room);
void ppx_stream_spool_end(void);
void ppx_stream_reset_child(void);
void ppx_stream_disable_child(void);

/* The collector connection's descriptor number (-1: none), for the I/O
 * hooks: a read or write of it by the program (a daemon that writes to
 * every descriptor) has mixed the program's bytes into the stream, or
 * taken the collector's. */
extern atomic_int ppx_stream_fd;
void ppx_stream_program_touched(void);
/* The program touched the connected socket since it was made. */
bool ppx_stream_program_touched_it(void);
/* In an I/O hook, before the call: fd is our connection's number, and the
 * caller is the program (not the profiler, which holds the guard). */
static inline void ppx_stream_check_program_use(int fd)
{
    if (PPX_UNLIKELY(fd == atomic_load_explicit(&ppx_stream_fd, memory_order_relaxed)) &&
        ppx_tls.guard == 0)
        ppx_stream_program_touched();
}

/* ---- hello.c ---- */

/* The constructor's argc/argv (glibc passes them to ELF constructors): the
 * HELLO's command line without reading /proc (and taking a descriptor). */
void ppx_stream_set_cmdline(int argc, char **argv);
bool ppx_stream_send_hello(void);

/* ---- stack_records.c ---- */

/* Emits s's STACK record, and counts its heap figures as not yet sent on
 * this connection. */
bool ppx_stream_emit_stack(struct ppx_encoder *enc, struct ppx_stack *s);
/* Emits s's STACK record unless this connection has it already. */
bool ppx_stream_send_stack(struct ppx_encoder *enc, struct ppx_stack *s);

/* ---- mappings.c (flusher only) ---- */

/* Rescans loaded objects when something was loaded or unloaded (or when
 * force), then encodes every mapping not yet sent on connection gen.
 * false when the connection failed. */
bool ppx_mappings_send(struct ppx_encoder *enc, uint64_t gen, bool force_scan);
/* The main executable's path into buf (NUL-terminated); its length. */
size_t ppx_exe_path(char *buf, size_t cap);

/* ---- spool.c: the final state of a process with no collector ---- */

/* Creates this incarnation's spool file (stream_mu held); its descriptor
 * and in *room the bytes it may take, or -1 when spooling is off or not
 * possible here (quietly, but for a full spool directory). */
int ppx_spool_open(uint64_t *room);
/* Closes it: kept under its final name when complete, else removed. */
void ppx_spool_close(int fd, bool complete);

/* ---- socket_trust.c ---- */

/* Whether the directory of the collector socket at socket_path may be
 * trusted: a directory (not a symlink) of this process's effective uid or
 * root, that group and others may not write. Says once why not. */
bool ppx_socket_dir_trusted(const char *socket_path);
/* Whether the listener at the other end of connected fd runs as this
 * process's effective uid or as root (SO_PEERCRED). Says once why not. */
bool ppx_socket_peer_trusted(int fd, const char *socket_path);

/* ---- inside this stage only ---- */

/* connection.c: writes to the socket (or spool file), within the
 * encoder's deadline; false when the connection failed. */
bool ppx_stream_write(const void *data, size_t len);

#pragma GCC visibility pop

#endif
