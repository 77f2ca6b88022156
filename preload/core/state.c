/* The library's state and this process incarnation's identity: written by
 * initialisation (and by fork's child handler), read everywhere. */
#include "core.h"

#include <unistd.h>

atomic_int ppx_state;
atomic_bool ppx_enabled;
uint64_t ppx_start_ns;
pid_t ppx_pid;

void ppx_incarnation_begin(void)
{
    ppx_start_ns = ppx_realtime_ns();
    ppx_pid = getpid();
}
