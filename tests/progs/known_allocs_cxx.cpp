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
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

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

int main()
{
    make_widgets();
    array_new_delete();
    nothrow_news();
    aligned_news();
    grow_vector();
    grow_vector_kept();
    make_strings();
    return 0;
}
