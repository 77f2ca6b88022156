/* C++ names for humans. The pprof files keep symbol names as the linker
 * knows them (Function.name == system_name, mangled): go tool pprof
 * demangles them itself, as its -symbolize=demangle=... option says.
 * ppx's own texts (ppx audit, ppx threads, heap?debug=1) demangle here,
 * with libstdc++'s demangler. */
#ifndef PPX_DEMANGLE_H
#define PPX_DEMANGLE_H

#include <stddef.h>

/* name demangled in full, as c++filt prints it ("ns::Log::write(int&, char*)"),
 * in a malloc'd string; NULL when name is no mangled C++ name (C names,
 * "0x..." addresses) or out of memory. */
char *demangle_name(const char *name);

/* name for a human in out (outlen > 0): demangled in full when mangled,
 * else as it is; the tail kept (after "...") when too long. Returns out. */
const char *demangle_into(const char *name, char *out, size_t outlen);

/* "ns::Pool::spawn" out of "void ns::Pool::spawn<int>(int) const", as go
 * tool pprof shows names by default: no parameters, template arguments or
 * return type. */
void demangle_simplify(const char *in, char *out, size_t outlen);

#endif
