/* Between the thread hooks (hooks_thread.c) and the registry (threads.c).
 *
 * Every function here is called with the calling thread's recursion guard
 * held, and only when the library is READY and enabled. */
#ifndef PPX_THREADS_H
#define PPX_THREADS_H

#include "../ppx_preload.h"

/* The calling thread's record; a thread not created through the hook (the
 * main thread, one found at start, one created while the hooks only passed
 * through) is looked up, or registered now as preexisting. NULL when out of
 * memory. */
struct ppx_thread_rec *ppx_threads_self(void);

/* pthread_create is about to start a thread whose start routine registers
 * it (ppx_threads_started), or failed to (ppx_threads_create_failed). Lets
 * the flusher's scan tell such a thread from one nobody will register. */
void ppx_threads_creating(void);
void ppx_threads_create_failed(void);

/* First thing on a thread created through the hook: registers it, starts
 * its CPU timer, and arranges for its end to be recorded. */
void ppx_threads_started(uint32_t creator_id, uint32_t stack_id);

/* The calling thread was renamed (the kernel has its new name). */
void ppx_threads_renamed_self(void);
/* Another thread, by its handle, was renamed to name (at most 15 bytes). */
void ppx_threads_renamed(pthread_t handle, const char *name);

#endif
