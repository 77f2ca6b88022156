/* The calling thread's profiler state (struct ppx_tls): static TLS, in the
 * initial-exec model, so that the hooks may touch it from the very first
 * malloc. Each thread writes only its own. */
#include "core.h"

PPX_TLS struct ppx_tls ppx_tls;
