// Exactly known C++ allocations for the end-to-end tests (libstdc++ on glibc).
//
// Figures as alloc_objects alloc_space inuse_objects inuse_space, by the
// demangled name go tool pprof shows:
//   flat make_widgets        100  4800 100  4800  (new Widget, 48 bytes)
//   flat Widget::Widget      100  2400 100  2400  (new char[24] in the constructor)
//   flat array_new_delete     50 50000   0     0  (new int[250] / delete[])
//   flat nothrow_news         20  2000  20  2000  (new (std::nothrow) char[100])
//   flat aligned_news         10   640  10   640  (new of a 64-aligned 64-byte type)
//   cum  grow_vector          11  8188   0     0  (vector<int> capacity 1, 2, ..., 1024)
//   cum  grow_vector_kept      9  2064   2  1048  (new vector<long>, capacity 1 ... 128)
//   cum  make_strings        200 13300 200 13300  (new std::string(100, 'x'): 32 + 101)
//   flat ns::Logger::format   10   640  10   640  (new char[64])
// and I/O calls under a C++ name, for ppx audit: ns::Logger::write_log(int)
// writes 1000 times 10 bytes to a Unix stream socket, 100 at a time, each
// batch drained by log_some (a send buffer holds few small writes).
//
// Usage: known_allocs_cxx [pause]
//   pause  then print "ready PID" and wait for end of input on stdin
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <sys/socket.h>
#include <unistd.h>

#include "known_allocs.h"

struct Widget {
    char name[40];
    char *buffer;
    Widget();
};

COUNTED Widget::Widget() : name{}, buffer(new char[24])
{
    ESCAPE(buffer);
}

struct alignas(64) Aligned {
    char bytes[64];
};

static_assert(sizeof(Widget) == 48, "Widget is 48 bytes");
static_assert(sizeof(std::string) == 32, "std::string is 32 bytes (libstdc++)");

// Written, never read: ESCAPE keeps the compiler from dropping the news.
static void *kept[128];

COUNTED void make_widgets()
{
    for (int i = 0; i < 100; i++) {
        kept[i] = new Widget;
        ESCAPE(kept[i]);
    }
}

COUNTED void array_new_delete()
{
    for (int i = 0; i < 50; i++) {
        int *p = new int[250];
        ESCAPE(p);
        delete[] p;
    }
}

COUNTED void nothrow_news()
{
    for (int i = 0; i < 20; i++) {
        kept[i] = new (std::nothrow) char[100];
        ESCAPE(kept[i]);
    }
}

COUNTED void aligned_news()
{
    for (int i = 0; i < 10; i++) {
        Aligned *p = new Aligned;
        if (reinterpret_cast<unsigned long>(p) % 64 != 0) {
            std::fprintf(stderr, "known_allocs_cxx: new Aligned is not 64-aligned\n");
            std::exit(10);
        }
        kept[i] = p;
        ESCAPE(p);
    }
}

COUNTED void grow_vector()
{
    std::vector<int> v;
    for (int i = 0; i < 1000; i++)
        v.push_back(i);
    ESCAPE(v.data());
}

COUNTED void grow_vector_kept()
{
    auto *v = new std::vector<long>;
    for (long i = 0; i < 100; i++)
        v->push_back(i);
    kept[0] = v;
    ESCAPE(v);
}

COUNTED void make_strings()
{
    for (int i = 0; i < 100; i++) {
        kept[i] = new std::string(100, 'x');
        ESCAPE(kept[i]);
    }
}

namespace ns
{
struct Logger {
    int fd;
    void write_log(int times);
    static char *format(int size);
};
} // namespace ns

COUNTED char *ns::Logger::format(int size)
{
    char *p = new char[size];
    ESCAPE(p);
    return p;
}

COUNTED void ns::Logger::write_log(int times)
{
    for (int i = 0; i < times; i++)
        if (write(fd, "0123456789", 10) != 10) {
            std::fprintf(stderr, "known_allocs_cxx: write failed\n");
            std::exit(10);
        }
}

static void log_some()
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        std::fprintf(stderr, "known_allocs_cxx: socketpair failed\n");
        std::exit(10);
    }
    for (int i = 0; i < 10; i++)
        kept[i] = ns::Logger::format(64);
    ns::Logger log{sv[0]};
    char buf[1000];
    for (int round = 0; round < 10; round++) {
        log.write_log(100);
        for (size_t got = 0; got < sizeof buf;) {
            ssize_t n = read(sv[1], buf + got, sizeof buf - got);
            if (n <= 0) {
                std::fprintf(stderr, "known_allocs_cxx: read failed\n");
                std::exit(10);
            }
            got += (size_t)n;
        }
    }
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    make_widgets();
    array_new_delete();
    nothrow_news();
    aligned_news();
    grow_vector();
    grow_vector_kept();
    make_strings();
    log_some();
    if (argc > 1 && std::strcmp(argv[1], "pause") == 0) {
        std::printf("ready %d\n", (int)getpid());
        std::fflush(stdout);
        char line[64];
        while (std::fgets(line, sizeof line, stdin))
            ;
    }
    return 0;
}
