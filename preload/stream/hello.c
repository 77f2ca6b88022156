/* The HELLO that opens every stream: who this process is, its executable
 * and command line. The command line comes from the constructor's argv
 * (glibc passes argc and argv to ELF constructors), so that the HELLO
 * needs no read of /proc (and no descriptor); from /proc if it did not. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Written by the constructor, read by whoever sends a HELLO (state_mu). */
static char cmdline[WIRE_MAX_PATH];
static size_t cmdline_len;
static bool have_cmdline;

void ppx_stream_set_cmdline(int argc, char **argv)
{
    size_t len = 0;
    for (int i = 0; argv != NULL && i < argc && argv[i] != NULL && len < sizeof cmdline; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (n > sizeof cmdline - len)
            n = sizeof cmdline - len; /* truncated, as WIRE_MAX_PATH demands */
        memcpy(cmdline + len, argv[i], n);
        len += n;
    }
    cmdline_len = len;
    have_cmdline = argv != NULL;
}

static size_t read_proc_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t len = 0;
    while (len < sizeof cmdline) {
        ssize_t n = read(fd, cmdline + len, sizeof cmdline - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return len;
}

bool ppx_stream_send_hello(void)
{
    static char exe[WIRE_MAX_PATH + 1];
    size_t exe_len = ppx_exe_path(exe, sizeof exe);
    if (!have_cmdline) {
        cmdline_len = read_proc_cmdline();
        have_cmdline = true;
    }
    struct wire_hello h = {
        .magic = WIRE_MAGIC,
        .version = WIRE_VERSION,
        .pid = (uint32_t)getpid(),
        .ppid = (uint32_t)getppid(),
        .start_ns = ppx_start_ns,
        .sample_rate = ppx_config.sample_rate,
        .max_depth = ppx_config.max_depth,
        .exe_len = (uint32_t)exe_len,
        .cmdline_len = (uint32_t)cmdline_len,
        .flags = ppx_config.cpu_hz_fixed ? WIRE_HELLO_CPU_FIXED : 0,
    };
    return ppx_emit(ppx_stream_encoder(), WIRE_HELLO, &h, sizeof h, exe, exe_len, cmdline,
                    cmdline_len);
}
