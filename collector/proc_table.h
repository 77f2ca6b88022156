/* The collector's processes, keyed by (pid, start_ns): one entry per
 * target incarnation. A HELLO creates an entry or, when the same
 * incarnation reconnects, resets it (the target resends its full state).
 * A new start_ns for a pid already seen is a new incarnation (the process
 * exec'd): its `incarnation` number is one more than the last one's. */
#ifndef PPX_PROC_TABLE_H
#define PPX_PROC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "process.h"

struct proc_table;

struct proc_table *proc_table_new(void);
/* Frees every process and the table. */
void proc_table_free(struct proc_table *t);

struct proc *proc_table_find(const struct proc_table *t, uint32_t pid, uint64_t start_ns);

/* Returns the process for (pid, start_ns), created if new, emptied if it
 * existed (its stacks, mappings, strings and counters dropped; pid, start_ns
 * and incarnation kept). *existed tells which. NULL when out of memory. */
struct proc *proc_table_hello(struct proc_table *t, uint32_t pid, uint64_t start_ns,
                              bool *existed);

/* How many HELLOs p has had: a connection that took the n-th is the
 * process's latest while this is n. */
unsigned proc_table_hellos(const struct proc *p);

/* The order (wire_decoder_set_order) of the connection whose HELLO was
 * taken last for p; 0 if none had one. */
uint64_t proc_table_hello_order(const struct proc *p);
void proc_table_set_hello_order(struct proc *p, uint64_t order);

/* Who currently feeds a process: the decoder of its live connection, or
 * NULL. A reconnect takes ownership; the older connection then learns it
 * was superseded. */
void *proc_table_owner(const struct proc *p);
void proc_table_set_owner(struct proc *p, void *owner);

/* True the first time it is called for p: a process whose stream broke
 * the protocol keeps what it sent before the bad record, and is welcome to
 * reconnect (its HELLO starts afresh, and it resends its whole state); if
 * its streams keep breaking, saying so once is enough. */
bool proc_table_first_corruption(struct proc *p);

/* Removes p from the table and frees it. p must have no connection
 * (proc_table_owner(p) == NULL): the live collector forgets exited
 * processes this way. */
void proc_table_remove(struct proc_table *t, struct proc *p);

size_t proc_table_count(const struct proc_table *t);
/* The processes in the order they first said HELLO, in a malloc'ed array
 * the caller frees (the processes stay owned by the table). *n gets the
 * count. NULL with *n == 0 for an empty table or when out of memory. */
struct proc **proc_table_list(const struct proc_table *t, size_t *n);

/* True when any stack of p has a sampled allocation. */
bool proc_has_samples(const struct proc *p);

/* True when p made any I/O call a site counted. */
bool proc_has_io(const struct proc *p);

/* True when p sent a CPU sample, or lost one. */
bool proc_has_cpu(const struct proc *p);

/* True when p described any thread. */
bool proc_has_threads(const struct proc *p);

/* I/O detail the decoder dropped beyond its limits (wire_decode.h), since
 * p's last HELLO: sampled calls whose stack was not kept, and failed calls
 * whose errno was not named. The sites' own figures include both. */
void proc_table_count_io_drops(struct proc *p, uint64_t stack_samples, uint64_t errno_calls);
void proc_table_io_drops(const struct proc *p, uint64_t *stack_samples, uint64_t *errno_calls);

/* Drops everything a HELLO sent after: stacks, mappings, I/O sites,
 * threads, CPU samples and counts, exe, cmdline. */
void proc_clear(struct proc *p);

#endif
